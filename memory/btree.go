package memory

import "slices"

// btree is an ordered set of T under cmp: a B-tree whose every node but
// the root holds minItems to maxItems items, so insert, delete and finding
// where a range starts cost O(log n), and a range of m items costs
// O(log n + m) to walk. It is not safe for concurrent use (p.mu guards it).
type btree[T any] struct {
	cmp  func(a, b T) int
	root *node[T]
	size int
}

// node is a B-tree node: a leaf when children is nil, otherwise
// children[i] holds the items between items[i-1] and items[i].
type node[T any] struct {
	items    []T
	children []*node[T]
}

const (
	degree   = 32
	maxItems = 2*degree - 1
	minItems = degree - 1
)

func newBTree[T any](cmp func(a, b T) int) *btree[T] {
	return &btree[T]{cmp: cmp}
}

// insert adds v, replacing an item equal to it.
func (t *btree[T]) insert(v T) {
	if t.root == nil {
		t.root = &node[T]{items: make([]T, 0, maxItems)}
	}
	if len(t.root.items) == maxItems {
		old := t.root
		mid, right := old.split(minItems)
		t.root = &node[T]{items: []T{mid}, children: []*node[T]{old, right}}
	}
	if t.root.insert(v, t.cmp) {
		t.size++
	}
}

// delete removes the item equal to v, if there is one.
func (t *btree[T]) delete(v T) {
	if t.root == nil {
		return
	}
	if t.root.remove(v, t.cmp) {
		t.size--
	}
	if len(t.root.items) == 0 {
		if t.root.children == nil {
			t.root = nil
		} else {
			t.root = t.root.children[0]
		}
	}
}

// ascend calls fn on the items not below from (all items when from is
// nil), in order, until fn returns false. A nil tree is empty.
func (t *btree[T]) ascend(from *T, fn func(T) bool) {
	if t != nil && t.root != nil {
		t.root.ascend(from, t.cmp, fn)
	}
}

// find returns where v is or would be in n.items, and whether it is there.
func (n *node[T]) find(v T, cmp func(a, b T) int) (int, bool) {
	return slices.BinarySearchFunc(n.items, v, cmp)
}

// split cuts n at items[i]: n keeps what is before it, and split returns
// it and a new node holding what is after it.
func (n *node[T]) split(i int) (T, *node[T]) {
	mid := n.items[i]
	right := &node[T]{items: make([]T, 0, maxItems)}
	right.items = append(right.items, n.items[i+1:]...)
	clear(n.items[i:])
	n.items = n.items[:i]
	if n.children != nil {
		right.children = make([]*node[T], 0, maxItems+1)
		right.children = append(right.children, n.children[i+1:]...)
		clear(n.children[i+1:])
		n.children = n.children[:i+1]
	}
	return mid, right
}

// insert adds v under n, which is not full, and reports whether v is new.
// A full child is split before the descent into it, so no split goes back
// up.
func (n *node[T]) insert(v T, cmp func(a, b T) int) bool {
	i, found := n.find(v, cmp)
	if found {
		n.items[i] = v
		return false
	}
	if n.children == nil {
		n.items = slices.Insert(n.items, i, v)
		return true
	}
	if len(n.children[i].items) == maxItems {
		mid, right := n.children[i].split(minItems)
		n.items = slices.Insert(n.items, i, mid)
		n.children = slices.Insert(n.children, i+1, right)
		switch c := cmp(v, mid); {
		case c == 0:
			n.items[i] = v
			return false
		case c > 0:
			i++
		}
	}
	return n.children[i].insert(v, cmp)
}

// remove deletes v from under n and reports whether it was there. n is the
// root or holds more than minItems items, so it can give one up: before
// descending into a child with minItems items, remove grows it (see grow).
func (n *node[T]) remove(v T, cmp func(a, b T) int) bool {
	i, found := n.find(v, cmp)
	if n.children == nil {
		if found {
			n.items = slices.Delete(n.items, i, i+1)
		}
		return found
	}
	if len(n.children[i].items) == minItems {
		n.grow(i)
		return n.remove(v, cmp)
	}
	if found {
		n.items[i] = n.children[i].removeMax()
		return true
	}
	return n.children[i].remove(v, cmp)
}

// removeMax deletes and returns the greatest item under n, which holds
// more than minItems items.
func (n *node[T]) removeMax() T {
	if n.children == nil {
		last := len(n.items) - 1
		v := n.items[last]
		n.items = slices.Delete(n.items, last, last+1)
		return v
	}
	i := len(n.children) - 1
	if len(n.children[i].items) == minItems {
		n.grow(i)
		return n.removeMax()
	}
	return n.children[i].removeMax()
}

// grow gives children[i], which holds minItems items, one more: it takes
// one through n from a sibling that can spare one, or else merges it with
// a sibling and the item between them.
func (n *node[T]) grow(i int) {
	switch {
	case i > 0 && len(n.children[i-1].items) > minItems:
		child, left := n.children[i], n.children[i-1]
		last := len(left.items) - 1
		child.items = slices.Insert(child.items, 0, n.items[i-1])
		n.items[i-1] = left.items[last]
		left.items = slices.Delete(left.items, last, last+1)
		if left.children != nil {
			c := left.children[last+1]
			left.children = slices.Delete(left.children, last+1, last+2)
			child.children = slices.Insert(child.children, 0, c)
		}
	case i < len(n.items) && len(n.children[i+1].items) > minItems:
		child, right := n.children[i], n.children[i+1]
		child.items = append(child.items, n.items[i])
		n.items[i] = right.items[0]
		right.items = slices.Delete(right.items, 0, 1)
		if right.children != nil {
			child.children = append(child.children, right.children[0])
			right.children = slices.Delete(right.children, 0, 1)
		}
	default:
		if i == len(n.items) {
			i--
		}
		child, right := n.children[i], n.children[i+1]
		child.items = append(child.items, n.items[i])
		child.items = append(child.items, right.items...)
		child.children = append(child.children, right.children...)
		n.items = slices.Delete(n.items, i, i+1)
		n.children = slices.Delete(n.children, i+1, i+2)
	}
}

// ascend calls fn on the items under n not below from (all when from is
// nil), in order, and reports whether fn always returned true.
func (n *node[T]) ascend(from *T, cmp func(a, b T) int, fn func(T) bool) bool {
	i := 0
	if from != nil {
		i, _ = n.find(*from, cmp)
	}
	for ; ; i++ {
		// Only the first child visited can hold items below from.
		if n.children != nil && !n.children[i].ascend(from, cmp, fn) {
			return false
		}
		from = nil
		if i == len(n.items) {
			return true
		}
		if !fn(n.items[i]) {
			return false
		}
	}
}
