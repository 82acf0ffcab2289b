// Package memory is a Timebox backend that keeps everything in process
// memory: for tests, examples and single-process tools. It supports every
// feature, archiving included, and is safe for concurrent use. Nothing
// survives the process.
//
// [NewPersistence] returns an empty, ready backend; [Persistence.NewStore]
// opens a [timebox.Store] on it:
//
//	store, err := memory.NewPersistence().NewStore(timebox.Config{})
//
// One read-write lock guards all state, so every write ([Persistence.Append],
// [Persistence.SaveSnapshot], [Persistence.Archive]) is atomic and every
// read sees a whole write or none of it. The backend stores copies of what
// it is given and hands out copies, so no caller can change stored history.
// DESIGN.md describes the layout and the guarantees.
//
// Files by duty: persistence.go (the type, open and close), append.go,
// load.go, snapshot.go, index.go (the aggregate list, status and label
// indexes), btree.go (the ordered set they are kept in), query.go (index
// reads and listing), page.go (paged lists), archive.go.
package memory
