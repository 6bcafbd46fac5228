package train

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"github.com/switchkd/switchkd/plot"
)

// ReadMetrics reads a metrics.jsonl; a malformed line is an error naming it.
func ReadMetrics(path string) ([]Metrics, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Metrics
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for line := 1; sc.Scan(); line++ {
		var m Metrics
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// PlotMetrics draws the loss terms of a metrics.jsonl against the global step into a PNG.
func PlotMetrics(metricsPath, pngPath string) error {
	ms, err := ReadMetrics(metricsPath)
	if err != nil {
		return err
	}
	names := []string{"total", "ce", "align", "vsd"}
	series := make([]plot.Series, len(names))
	for i, n := range names {
		series[i].Name = n
	}
	for _, m := range ms {
		for i, v := range []float64{m.Total, m.CE, m.Align, m.VSD} {
			series[i].X = append(series[i].X, float64(m.Step))
			series[i].Y = append(series[i].Y, v)
		}
	}
	// Terms that stayed 0 throughout (not in the objective) are left out.
	var keep []plot.Series
	for _, s := range series {
		for _, y := range s.Y {
			if y != 0 {
				keep = append(keep, s)
				break
			}
		}
	}
	if len(keep) == 0 {
		return fmt.Errorf("%s: no loss values to plot", metricsPath)
	}
	return plot.LineChart(pngPath, "Training loss", "step", "loss", keep)
}
