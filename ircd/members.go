package ircd

import (
	"cmp"
	"slices"
)

// memberList is a channel's virtual members and their status, in the
// order of the users' ids (vuser.id, given as they are added): a sorted
// slice of pointers and one of statuses take about half of what a map of
// them took, and an id is a number, quick to compare. Guarded by
// Client.mu.
type memberList struct {
	us []*vuser
	st []status
}

// find returns where u is, or would be, in the list.
func (m *memberList) find(u *vuser) (int, bool) {
	lo, hi := 0, len(m.us)
	if hi > 0 && m.us[hi-1].id < u.id {
		return hi, false // after the last: a user joining once added
	}
	for lo < hi {
		h := int(uint(lo+hi) >> 1)
		if m.us[h].id < u.id {
			lo = h + 1
		} else {
			hi = h
		}
	}
	return lo, lo < len(m.us) && m.us[lo] == u
}

// get returns u's status and whether u is a member.
func (m *memberList) get(u *vuser) (status, bool) {
	if i, ok := m.find(u); ok {
		return m.st[i], true
	}
	return 0, false
}

// has reports whether u is a member.
func (m *memberList) has(u *vuser) bool {
	_, ok := m.find(u)
	return ok
}

// set makes u a member with status st, or sets its status.
func (m *memberList) set(u *vuser, st status) {
	i, ok := m.find(u)
	if ok {
		m.st[i] = st
		return
	}
	m.us = slices.Insert(m.us, i, u)
	m.st = slices.Insert(m.st, i, st)
}

// remove takes u out; false if it was not a member.
func (m *memberList) remove(u *vuser) bool {
	i, ok := m.find(u)
	if !ok {
		return false
	}
	m.us = slices.Delete(m.us, i, i+1)
	m.st = slices.Delete(m.st, i, i+1)
	return true
}

// len is the number of members.
func (m *memberList) len() int { return len(m.us) }

// grow makes room for n more members.
func (m *memberList) grow(n int) {
	m.us = slices.Grow(m.us, n)
	m.st = slices.Grow(m.st, n)
}

// sort puts the members back in the order of their ids (see
// Client.renumberUsers).
func (m *memberList) sort() {
	idx := make([]int, len(m.us))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(m.us[a].id, m.us[b].id) })
	us, st := make([]*vuser, len(idx)), make([]status, len(idx))
	for i, j := range idx {
		us[i], st[i] = m.us[j], m.st[j]
	}
	m.us, m.st = us, st
}
