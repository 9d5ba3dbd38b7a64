//go:build !linux

package main

import "os"

func noEcho(*os.File) (restore func(), ok bool) { return func() {}, false }
