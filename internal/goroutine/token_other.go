//go:build !amd64 && !arm64

package goroutine

func token() uintptr {
	return uintptr(ID())
}
