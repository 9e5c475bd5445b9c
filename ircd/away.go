package ircd

// awayTexts interns the away texts of a client's virtual users. Most
// users share a few ("Offline", "Away", a status or two), so a user keeps
// a 16-bit index rather than a string of its own; index 0 is "" (here).
// A text no user holds any longer frees its slot. Guarded by Client.mu.
type awayTexts struct {
	texts []string          // the text of index i+1; "" when free
	refs  []int32           // how many users hold index i+1
	free  []uint16          // indexes no user holds
	index map[string]uint16 // text → index, once there are many
}

// awayIndexAt is how many texts make a lookup go through a map.
const awayIndexAt = 16

// maxAwayTexts is the most distinct texts: the index is 16 bits.
const maxAwayTexts = 1<<16 - 1

// text is index i's text.
func (a *awayTexts) text(i uint16) string {
	if i == 0 {
		return ""
	}
	return a.texts[i-1]
}

// hold returns text's index, counting one more user of it. With every
// slot taken by other texts (65,535 of them) it returns 0: the user shows
// as here rather than with another's text.
func (a *awayTexts) hold(text string) uint16 {
	if text == "" {
		return 0
	}
	if i, ok := a.find(text); ok {
		a.refs[i-1]++
		return i
	}
	var slot int
	switch {
	case len(a.free) > 0:
		slot = int(a.free[len(a.free)-1]) - 1
		a.free = a.free[:len(a.free)-1]
	case len(a.texts) == maxAwayTexts:
		return 0
	default:
		a.texts = append(a.texts, "")
		a.refs = append(a.refs, 0)
		slot = len(a.texts) - 1
	}
	a.texts[slot], a.refs[slot] = text, 1
	i := uint16(slot + 1)
	if a.index != nil {
		a.index[text] = i
	} else if len(a.texts) > awayIndexAt {
		a.index = make(map[string]uint16, len(a.texts))
		for j, t := range a.texts {
			if a.refs[j] > 0 {
				a.index[t] = uint16(j + 1)
			}
		}
	}
	return i
}

// find looks text up among the texts held.
func (a *awayTexts) find(text string) (uint16, bool) {
	if a.index != nil {
		i, ok := a.index[text]
		return i, ok
	}
	for j, t := range a.texts {
		if t == text && a.refs[j] > 0 {
			return uint16(j + 1), true
		}
	}
	return 0, false
}

// release counts one user fewer of index i.
func (a *awayTexts) release(i uint16) {
	if i == 0 {
		return
	}
	if a.refs[i-1]--; a.refs[i-1] > 0 {
		return
	}
	if a.index != nil {
		delete(a.index, a.texts[i-1])
	}
	a.texts[i-1] = ""
	a.free = append(a.free, i)
}
