// Package spool keeps a stream of bytes too large for memory in an
// unlinked temporary file that is written and read around the page cache
// (O_DIRECT where the file system allows it, an ordinary file elsewhere).
//
// `pftap lab` records every leg of a transfer before it decodes them: for a
// 1 GiB transfer that is six copies of the data. Through the page cache
// each copy costs the kernel fresh pages, and on machines where fresh
// memory is expensive (virtual machines whose memory the host hands out on
// first touch) writing them cost more than the whole forward chain.
// Copying into a few reused, page-aligned chunks and letting the disk take
// them directly keeps that cost off the chain: the writer copies into
// memory that is already there, a goroutine of the spool does the I/O, and
// the writer only waits when every chunk is waiting for the disk.
package spool
