package train

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// RunConfig is the YAML schema of `switchkd distill --config FILE.yaml` (docs/DISTILL.md).
// Unknown keys are errors.
type RunConfig struct {
	Teacher    string           `yaml:"teacher"`
	Student    string           `yaml:"student"`
	Data       string           `yaml:"data"`
	Images     string           `yaml:"images"`
	Out        string           `yaml:"out"`
	Backend    string           `yaml:"backend"`
	Seed       uint64           `yaml:"seed"`
	Workers    int              `yaml:"workers"`
	Batch      BatchConfig      `yaml:"batch"`
	Optimizer  OptimizerConfig  `yaml:"optimizer"`
	Objective  ObjectiveConfig  `yaml:"objective"`
	Stages     []StageConfig    `yaml:"stages"`
	Checkpoint CheckpointConfig `yaml:"checkpoint"`
	Logging    LoggingConfig    `yaml:"logging"`
}

type BatchConfig struct {
	Global    int `yaml:"global"`
	Micro     int `yaml:"micro"`
	SeqBucket int `yaml:"seq_bucket"`
	PosBucket int `yaml:"pos_bucket"`
	// Concurrent: chunks of a micro-batch whose forward/backward run at once (0: one per core).
	Concurrent int `yaml:"concurrent"`
}

type OptimizerConfig struct {
	Beta1       float64 `yaml:"beta1"`
	Beta2       float64 `yaml:"beta2"`
	Eps         float64 `yaml:"eps"`
	WeightDecay float64 `yaml:"weight_decay"`
	MaxGradNorm float64 `yaml:"max_grad_norm"`
}

// ObjectiveConfig sets the objective; in a stage, only the keys given override the top level.
type ObjectiveConfig struct {
	WCE    *float64 `yaml:"w_ce"`
	WAlign *float64 `yaml:"w_align"`
	WVSD   *float64 `yaml:"w_vsd"`
	Align  *string  `yaml:"align"`
	VSD    *string  `yaml:"vsd"`
	Tau    *float64 `yaml:"tau"`
	Window *int     `yaml:"window"`
	KMin   *int     `yaml:"k_min"`
	KMax   *int     `yaml:"k_max"`
	BiLDK  *int     `yaml:"bild_k"`
}

type StageConfig struct {
	Name        string          `yaml:"name"`
	Steps       int             `yaml:"steps"`
	LR          float64         `yaml:"lr"`
	WarmupRatio float64         `yaml:"warmup_ratio"`
	Train       []string        `yaml:"train"`
	Objective   ObjectiveConfig `yaml:"objective"`
}

type CheckpointConfig struct {
	SaveEvery int    `yaml:"save_every"`
	KeepLast  int    `yaml:"keep_last"`
	DType     string `yaml:"dtype"` // of the final student: F32 or BF16
}

type LoggingConfig struct {
	Progress bool `yaml:"progress"`
	Plots    bool `yaml:"plots"`
}

// DefaultRunConfig is one Switch-KD stage training the whole student (TinyLLaVA stage-2
// learning rate and warmup; batch sizes for a CPU).
func DefaultRunConfig() RunConfig {
	return RunConfig{
		Backend: "go", Workers: 2,
		Batch:      BatchConfig{Global: 8, Micro: 4, SeqBucket: 32, PosBucket: 32},
		Optimizer:  OptimizerConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, MaxGradNorm: 1},
		Stages:     []StageConfig{{Name: "switchkd", Steps: 100, LR: 2e-5, WarmupRatio: 0.03, Train: []string{"vision_tower", "connector", "llm"}}},
		Checkpoint: CheckpointConfig{SaveEvery: 0, KeepLast: 2, DType: "F32"},
		Logging:    LoggingConfig{Progress: true, Plots: true},
	}
}

// LoadRunConfig starts from the defaults, applies the YAML file (if path != "") and then each
// "key.path=value" override (values are YAML scalars; list items by index: stages.0.lr=1e-3).
func LoadRunConfig(path string, sets []string) (RunConfig, error) {
	cfg := DefaultRunConfig()
	var doc yaml.Node
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("reading config: %w", err)
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return cfg, fmt.Errorf("%s: %w", path, err)
		}
	}
	if doc.Kind == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode}}}
	}
	// Defaults go in first so --set can address e.g. stages.0.lr without a file.
	var def yaml.Node
	if err := def.Encode(encodable(cfg)); err != nil {
		return cfg, err
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return cfg, fmt.Errorf("%s: the config must be a mapping of keys", path)
	}
	if !hasKey(root, "stages") {
		root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "stages"}, lookup(&def, "stages"))
	}
	for _, s := range sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return cfg, fmt.Errorf("--set %q: want key.path=value", s)
		}
		if err := setPath(root, strings.Split(k, "."), v); err != nil {
			return cfg, fmt.Errorf("--set %s: %w", k, err)
		}
	}
	b, err := yaml.Marshal(&doc)
	if err != nil {
		return cfg, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		where := path
		if where == "" {
			where = "--set"
		}
		return cfg, fmt.Errorf("%s: %w", where, err)
	}
	return cfg, nil
}

// encodable mirrors RunConfig for encoding defaults (pointer fields omitted when nil).
func encodable(c RunConfig) RunConfig { return c }

func hasKey(m *yaml.Node, key string) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return true
		}
	}
	return false
}

func lookup(doc *yaml.Node, key string) *yaml.Node {
	m := doc
	if m.Kind == yaml.DocumentNode {
		m = m.Content[0]
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func setPath(n *yaml.Node, path []string, value string) error {
	key := path[0]
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				if len(path) == 1 {
					n.Content[i+1] = scalar(value)
					return nil
				}
				return setPath(n.Content[i+1], path[1:], value)
			}
		}
		child := scalar(value)
		if len(path) > 1 {
			child = &yaml.Node{Kind: yaml.MappingNode}
			if _, err := strconv.Atoi(path[1]); err == nil {
				child = &yaml.Node{Kind: yaml.SequenceNode}
			}
			if err := setPath(child, path[1:], value); err != nil {
				return err
			}
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, child)
		return nil
	case yaml.SequenceNode:
		i, err := strconv.Atoi(key)
		if err != nil || i < 0 || i >= len(n.Content) {
			return fmt.Errorf("index %q is not in a list of %d", key, len(n.Content))
		}
		if len(path) == 1 {
			n.Content[i] = scalar(value)
			return nil
		}
		return setPath(n.Content[i], path[1:], value)
	}
	return fmt.Errorf("%q is not a mapping or list", key)
}

func scalar(v string) *yaml.Node {
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(v), &n); err == nil && len(n.Content) == 1 && n.Content[0].Kind == yaml.ScalarNode {
		return n.Content[0]
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Value: v}
}

// objective resolves a stage's objective: defaults, then the top level, then the stage.
func (c RunConfig) objective(st StageConfig) (Objective, error) {
	o := DefaultObjective()
	for _, oc := range []ObjectiveConfig{c.Objective, st.Objective} {
		if oc.WCE != nil {
			o.WCE = *oc.WCE
		}
		if oc.WAlign != nil {
			o.WAlign = *oc.WAlign
		}
		if oc.WVSD != nil {
			o.WVSD = *oc.WVSD
		}
		if oc.Align != nil {
			d, err := ParseDivergence(*oc.Align)
			if err != nil {
				return o, err
			}
			o.Align = d
		}
		if oc.VSD != nil {
			d, err := ParseDivergence(*oc.VSD)
			if err != nil {
				return o, err
			}
			o.VSD = d
		}
		if oc.Tau != nil {
			// One temperature for every term (DBiLD reads its own copy).
			o.Tau, o.DBiLD.Tau = *oc.Tau, *oc.Tau
		}
		if oc.Window != nil {
			o.DBiLD.Window = *oc.Window
		}
		if oc.KMin != nil {
			o.DBiLD.KMin = *oc.KMin
		}
		if oc.KMax != nil {
			o.DBiLD.KMax = *oc.KMax
		}
		if oc.BiLDK != nil {
			o.BiLDK = *oc.BiLDK
		}
	}
	return o, validateObjective(o)
}

// Build validates the configuration and turns it into stages and trainer options.
func (c RunConfig) Build() ([]Stage, Options, error) {
	var stages []Stage
	if len(c.Stages) == 0 {
		return nil, Options{}, fmt.Errorf("config: no stages")
	}
	for i, sc := range c.Stages {
		if sc.Name == "" {
			sc.Name = fmt.Sprintf("stage%d", i+1)
		}
		obj, err := c.objective(sc)
		if err != nil {
			return nil, Options{}, fmt.Errorf("stage %q: %w", sc.Name, err)
		}
		st := Stage{Name: sc.Name, Steps: sc.Steps, LR: sc.LR, WarmupRatio: sc.WarmupRatio, Objective: obj}
		for _, m := range sc.Train {
			switch Module(m) {
			case Vision, Connector, LLM:
				st.Train = append(st.Train, Module(m))
			default:
				return nil, Options{}, fmt.Errorf("stage %q: unknown module %q (vision_tower, connector, llm)", sc.Name, m)
			}
		}
		if st.Steps <= 0 || st.LR <= 0 || st.WarmupRatio < 0 || st.WarmupRatio >= 1 {
			return nil, Options{}, fmt.Errorf("stage %q: steps and lr must be positive, warmup_ratio in [0, 1)", sc.Name)
		}
		stages = append(stages, st)
	}
	b := c.Batch
	if b.Micro <= 0 || b.Global <= 0 || b.Global%b.Micro != 0 {
		return nil, Options{}, fmt.Errorf("config: batch.global (%d) must be a positive multiple of batch.micro (%d)", b.Global, b.Micro)
	}
	if b.Concurrent < 0 {
		return nil, Options{}, fmt.Errorf("config: batch.concurrent (%d) must be >= 0", b.Concurrent)
	}
	if b.SeqBucket <= 0 || b.PosBucket <= 0 {
		return nil, Options{}, fmt.Errorf("config: batch.seq_bucket and batch.pos_bucket must be positive")
	}
	if c.Out == "" {
		return nil, Options{}, fmt.Errorf("config: out (the output folder) is required")
	}
	switch c.Checkpoint.DType {
	case "F32", "BF16":
	default:
		return nil, Options{}, fmt.Errorf("config: checkpoint.dtype %q (F32 or BF16)", c.Checkpoint.DType)
	}
	o := c.Optimizer
	opt := Options{
		Optimizer:   AdamW{Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps, WeightDecay: o.WeightDecay, MaxGradNorm: o.MaxGradNorm},
		GlobalBatch: b.Global, MicroBatch: b.Micro, SeqBucket: b.SeqBucket, PosBucket: b.PosBucket,
		Concurrent: b.Concurrent, Out: c.Out, SaveEvery: c.Checkpoint.SaveEvery, KeepLast: c.Checkpoint.KeepLast,
	}
	return stages, opt, nil
}

// StageObjective is the resolved objective of stage i.
func (c RunConfig) StageObjective(i int) (Objective, error) {
	if i < 0 || i >= len(c.Stages) {
		return Objective{}, fmt.Errorf("config: no stage %d", i)
	}
	return c.objective(c.Stages[i])
}
