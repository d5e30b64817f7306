package main

import "os"

func main() {
	ios := systemIO()
	ios.plugin = asPlugin(os.Args[0])
	os.Exit(run(os.Args[1:], ios))
}
