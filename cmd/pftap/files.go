package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// checkWritable says, before anything runs, whether an output file can be
// written, without leaving anything behind.
func checkWritable(flag, path string) error {
	if path == "" {
		return nil
	}
	if fi, err := os.Stat(path); err == nil {
		if fi.IsDir() {
			return fmt.Errorf("%s %s: is a directory", flag, path)
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("%s %s: %w", flag, path, errors.Unwrap(err))
		}
		return f.Close()
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("%s %s: the directory %s does not exist", flag, path, dir)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s %s: %s is not a directory", flag, path, dir)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("%s %s: %w", flag, path, errors.Unwrap(err))
	}
	f.Close()
	return os.Remove(path)
}
