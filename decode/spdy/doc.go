// Package spdy reads SPDY/3.1 frames, as used by Kubernetes port-forward,
// exec and attach.
//
// A Framer decodes one direction of a session. Frames come either from an
// io.Reader (ReadFrame), or from bytes pushed in arbitrary chunks (Write,
// then Next until it returns no frame), which is how captures arrive. Each
// frame is read whole after its 8-byte header is checked against
// MaxFrameSize, then parsed from memory; unknown control types become
// *UnknownFrame, not errors. With DataPieces, a pushed DATA frame that
// spans chunks is returned in pieces as its bytes arrive instead, and the
// bytes of a chunk are not copied at all unless a frame's header or a
// control frame is cut by the chunk's end: a bulk transfer's payload is
// never copied by the framer.
//
// # Header compression
//
// SPDY/3 compresses every header block of a direction with one zlib stream
// that starts with the SPDY dictionary (HeaderDictionary). The Framer keeps
// that context, so it must see the direction's first header block: when it
// joins later, header blocks fail with ErrMidStream while framing and DATA
// go on. Inflated header blocks are bounded by MaxHeaderBytes and nothing is
// allocated from a length the wire announces before the bytes are there.
//
// # Errors
//
// ErrFrameTooLarge ends a direction. A *FrameError reports one malformed
// frame; the frame is often returned with it, and the next frame can still
// be read.
package spdy
