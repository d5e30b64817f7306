//go:build unix && !linux

package spool

const oDirect = 0
