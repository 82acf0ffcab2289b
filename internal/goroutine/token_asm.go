//go:build amd64 || arm64

package goroutine

// getg returns the address of the runtime's descriptor of the running
// goroutine, which the runtime keeps in a register or thread-local slot.
func getg() uintptr

func token() uintptr {
	return getg()
}
