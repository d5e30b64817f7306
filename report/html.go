package report

import (
	"os"

	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/timeline"
)

// WriteHTMLFile writes the page (timeline.WriteHTMLPage) to the file at path,
// readable by its owner only.
func WriteHTMLFile(path string, pg timeline.HTMLPage, events []*decode.Event, hops []timeline.Hops) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := timeline.WriteHTMLPage(f, pg, events, hops); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
