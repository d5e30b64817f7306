//go:build !linux

package nsenter

// Path resolves a namespace reference to a path.
func Path(ref string) string { return ref }

// Do is not supported on this OS.
func Do(ref string, fn func() error) error { return ErrNotSupported }

// Create is not supported on this OS.
func Create(name string) error { return ErrNotSupported }

// Delete is not supported on this OS.
func Delete(name string) error { return ErrNotSupported }

// List is not supported on this OS.
func List(prefix string) ([]string, error) { return nil, ErrNotSupported }

// Self is not supported on this OS.
func Self() string { return "?" }
