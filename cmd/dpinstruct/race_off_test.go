//go:build !race

package main

func raceBuild() bool { return false }
