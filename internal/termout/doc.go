// Package termout is what pftap's commands write to a terminal while
// they run: a status line redrawn in place on stderr (each leg's bytes
// and rate, drops, how long nothing has moved), cut to the terminal's
// width, and a Writer that gathers the timeline's lines from several
// goroutines into few writes and sends them through the status line
// while it is drawn.
package termout
