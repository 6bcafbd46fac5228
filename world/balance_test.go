package world

import (
	"slices"
	"testing"
)

// answerCounts tallies answers per template.
func answerCounts(ss []Sample) map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, s := range ss {
		if out[s.Template] == nil {
			out[s.Template] = map[string]int{}
		}
		out[s.Template][s.Answer()]++
	}
	return out
}

// chance is the per-type accuracy of guessing uniformly among each
// template's answers (weighted by the template's share of the type).
func chance(ss []Sample, answersPerTemplate map[string]int) map[string]float64 {
	n, acc := map[string]int{}, map[string]float64{}
	for _, s := range ss {
		n[s.Type]++
		acc[s.Type] += 1 / float64(answersPerTemplate[s.Template])
	}
	for k := range acc {
		acc[k] /= float64(n[k])
	}
	return acc
}

func TestBalance(t *testing.T) {
	_, m := defaultWorld(t)
	train, test := m.Samples(SplitTrain), m.Samples(SplitTest)
	all := answerCounts(slices.Concat(train, m.Samples(SplitVal), test))
	k := map[string]int{}
	for tpl, c := range all {
		k[tpl] = len(c)
	}

	for _, split := range Splits {
		ss := m.Samples(split)
		yes, yn := 0, 0
		pope := map[string][2]int{}
		letters := map[string]int{}
		mc := 0
		for _, s := range ss {
			if IsYesNo(s.QA()) {
				yn++
				if s.Answer() == "Yes" {
					yes++
				}
			}
			if s.PopeSplit != "" {
				p := pope[s.PopeSplit]
				p[1]++
				if s.Answer() == "Yes" {
					p[0]++
				}
				pope[s.PopeSplit] = p
			}
			if s.Type == TypeMC {
				letters[s.Answer()]++
				mc++
			}
		}
		if r := float64(yes) / float64(yn); r < 0.45 || r > 0.55 {
			t.Errorf("%s: yes ratio %.3f over %d yes/no questions", split, r, yn)
		}
		for _, ps := range PopeSplits {
			p := pope[ps]
			if r := float64(p[0]) / float64(p[1]); p[1] < 20 || r < 0.45 || r > 0.55 {
				t.Errorf("%s/%s: yes ratio %.3f over %d", split, ps, r, p[1])
			}
		}
		for _, l := range []string{"A", "B", "C", "D"} {
			if r := float64(letters[l]) / float64(mc); r < 0.22 || r > 0.28 {
				t.Errorf("%s: mc letter %s is the answer %.3f of the time", split, l, r)
			}
		}
	}

	// Per template in train: yes/no halves, near-uniform multi-answer templates.
	for tpl, c := range answerCounts(train) {
		n, mx := 0, 0
		for _, v := range c {
			n += v
			mx = max(mx, v)
		}
		share := float64(mx) / float64(n)
		switch {
		case k[tpl] == 2 && (share > 0.55):
			t.Errorf("%s: %v", tpl, c)
		case n >= 10*k[tpl] && share > 1.6/float64(k[tpl]):
			t.Errorf("%s: most frequent answer has %.3f share over %d answers: %v", tpl, share, k[tpl], c)
		}
	}

	// Counts spread over 0..4 (and 1..4 for the total).
	cnt := map[string]int{}
	nc := 0
	for _, s := range train {
		if s.Type == TypeCount {
			cnt[s.Answer()]++
			nc++
		}
	}
	for _, a := range []string{"0", "1", "2", "3", "4"} {
		if r := float64(cnt[a]) / float64(nc); r < 0.13 || r > 0.27 {
			t.Errorf("count answer %s has share %.3f (%v)", a, r, cnt)
		}
	}

	// Text priors stay near chance.
	ch := chance(train, k)
	blind := BlindBaseline(train)
	chT := chance(test, k)
	blindQ := BlindQuestionBaseline(train, test)
	for _, typ := range QATypes {
		t.Logf("%-9s chance %.3f  blind(template majority, train) %.3f  blind(question majority, train->test) %.3f (chance on test %.3f)",
			typ, ch[typ], blind[typ], blindQ[typ], chT[typ])
		if blind[typ] > ch[typ]+0.04 {
			t.Errorf("%s: template prior scores %.3f, chance %.3f", typ, blind[typ], ch[typ])
		}
		if blindQ[typ] > chT[typ]+0.07 {
			t.Errorf("%s: question prior scores %.3f on test, chance %.3f", typ, blindQ[typ], chT[typ])
		}
	}
	for _, ps := range PopeSplits {
		if b := blind[TypeExist+"/"+ps]; b > 0.52 {
			t.Errorf("exist/%s: blind %.3f", ps, b)
		}
	}
	if blind["all"] > 0.33 {
		t.Errorf("blind accuracy over all types %.3f", blind["all"])
	}
}

// TestPopularIsFrequent checks POPE's popular pool is the most frequent
// objects of the dataset.
func TestPopularIsFrequent(t *testing.T) {
	_, m := defaultWorld(t)
	freq := map[string]int{}
	for _, s := range m.Scenes() {
		for _, o := range s.Objects {
			freq[o.Name()]++
		}
	}
	if len(m.Vocab.Popular) != NumPopular {
		t.Fatalf("popular = %v", m.Vocab.Popular)
	}
	minPop := freq[m.Vocab.Popular[NumPopular-1]]
	for name, f := range freq {
		if f > minPop && !slices.Contains(m.Vocab.Popular, name) {
			t.Errorf("%s (%d) is more frequent than popular %v (%d)", name, f, m.Vocab.Popular, minPop)
		}
	}
	// The skew is real but mild: the most popular object is at most 3x the rarest.
	fs := make([]int, 0, len(freq))
	for _, f := range freq {
		fs = append(fs, f)
	}
	if len(fs) != len(Colours)*len(Shapes) || slices.Max(fs) > 3*slices.Min(fs) || slices.Max(fs) < slices.Min(fs)*5/4 {
		t.Errorf("object frequencies %v", fs)
	}
}
