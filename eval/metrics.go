package eval

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Metrics holds the numbers of one scored run: Values by name and Keys in table order.
// Accuracies are percentages (0-100); MME scores are in MME points; counts are plain counts.
type Metrics struct {
	Task   string
	Keys   []string
	Values map[string]float64
}

// NewMetrics returns empty metrics for task.
func NewMetrics(task string) *Metrics {
	return &Metrics{Task: task, Values: map[string]float64{}}
}

// Set records a value; a new key is appended to Keys.
func (m *Metrics) Set(key string, v float64) {
	if _, ok := m.Values[key]; !ok {
		m.Keys = append(m.Keys, key)
	}
	m.Values[key] = v
}

// Get returns a value and whether it exists.
func (m *Metrics) Get(key string) (float64, bool) {
	v, ok := m.Values[key]
	return v, ok
}

// WriteMarkdown prints the metrics as a two-column Markdown table in key order.
func (m *Metrics) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "| %s metric | value |\n|---|---:|\n", m.Task)
	for _, k := range m.Keys {
		fmt.Fprintf(&b, "| %s | %s |\n", k, FormatValue(k, m.Values[k]))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// FormatValue renders a metric for a table: counts as integers, everything else with 2 decimals
// (4 for POPE's fractions-turned-percent would be noise; the JSON output keeps full precision).
func FormatValue(key string, v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	if isCountKey(key) && v == math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func isCountKey(key string) bool {
	i := strings.LastIndexByte(key, '/')
	base := key[i+1:]
	switch base {
	case "count", "correct", "tp", "fp", "tn", "fn", "other", "images", "questions", "img_count", "img_correct", "failed":
		return true
	}
	return false
}

func sortedStrings(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}
