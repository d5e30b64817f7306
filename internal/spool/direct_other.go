//go:build !linux

package spool

const oDirect = 0
