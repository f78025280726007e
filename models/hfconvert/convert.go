package hfconvert

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dpinstruct/dpinstruct/models/llama2c"
)

// Names of the files FromLlama2c writes.
const (
	ConfigFile          = "config.json"
	WeightsFile         = "model.safetensors"
	TokenizerFile       = "tokenizer.json"
	TokenizerConfigFile = "tokenizer_config.json"
)

// Constants run.c hard-codes, which HF's config must state.
const (
	ropeTheta  = "10000.0" // json.Number: written as HF's Python writes it
	rmsNormEps = "1e-05"
)

// Config is the config.json of a HF LlamaForCausalLM, as far as a
// llama2.c model fills it. Field order is the file's key order.
type Config struct {
	Architectures         []string    `json:"architectures"`
	ModelType             string      `json:"model_type"`
	HiddenSize            int         `json:"hidden_size"`
	IntermediateSize      int         `json:"intermediate_size"`
	NumHiddenLayers       int         `json:"num_hidden_layers"`
	NumAttentionHeads     int         `json:"num_attention_heads"`
	NumKeyValueHeads      int         `json:"num_key_value_heads"`
	HeadDim               int         `json:"head_dim"`
	VocabSize             int         `json:"vocab_size"`
	MaxPositionEmbeddings int         `json:"max_position_embeddings"`
	RMSNormEps            json.Number `json:"rms_norm_eps"`
	RopeTheta             json.Number `json:"rope_theta"`
	TieWordEmbeddings     bool        `json:"tie_word_embeddings"`
	HiddenAct             string      `json:"hidden_act"`
	AttentionBias         bool        `json:"attention_bias"`
	MLPBias               bool        `json:"mlp_bias"`
	BOSTokenID            int         `json:"bos_token_id"`
	EOSTokenID            int         `json:"eos_token_id"`
	TorchDType            string      `json:"torch_dtype"`
}

// ConfigFor returns the HF config of a llama2.c model.
func ConfigFor(c llama2c.Config) Config {
	return Config{
		Architectures:         []string{"LlamaForCausalLM"},
		ModelType:             "llama",
		HiddenSize:            c.Dim,
		IntermediateSize:      c.Hidden,
		NumHiddenLayers:       c.Layers,
		NumAttentionHeads:     c.Heads,
		NumKeyValueHeads:      c.KVHeads,
		HeadDim:               c.HeadSize(),
		VocabSize:             c.Vocab,
		MaxPositionEmbeddings: c.SeqLen,
		RMSNormEps:            rmsNormEps,
		RopeTheta:             ropeTheta,
		TieWordEmbeddings:     c.SharedClassifier,
		HiddenAct:             "silu",
		BOSTokenID:            llama2c.BOS,
		EOSTokenID:            llama2c.EOS,
		TorchDType:            "float32",
	}
}

// marshalJSON indents like HF's save_pretrained and ends with a newline.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// checkSizes refuses a checkpoint whose slices do not match its Config
// (one built in memory by hand, say) before anything is written.
func checkSizes(ck *llama2c.Checkpoint) error {
	c := ck.Config
	if c.Dim <= 0 || c.Heads <= 0 || c.KVHeads <= 0 || c.Dim%c.Heads != 0 || c.HeadSize()%2 != 0 || c.Heads%c.KVHeads != 0 {
		return fmt.Errorf("hfconvert: invalid llama2c config %+v", c)
	}
	hs := c.HeadSize()
	q, kv, L := c.Heads*hs, c.KVDim(), c.Layers
	for _, s := range []struct {
		name string
		got  int
		want int
	}{
		{"TokenEmbedding", len(ck.TokenEmbedding), c.Vocab * c.Dim},
		{"RMSAtt", len(ck.RMSAtt), L * c.Dim},
		{"WQ", len(ck.WQ), L * q * c.Dim},
		{"WK", len(ck.WK), L * kv * c.Dim},
		{"WV", len(ck.WV), L * kv * c.Dim},
		{"WO", len(ck.WO), L * c.Dim * q},
		{"RMSFFN", len(ck.RMSFFN), L * c.Dim},
		{"W1", len(ck.W1), L * c.Hidden * c.Dim},
		{"W2", len(ck.W2), L * c.Dim * c.Hidden},
		{"W3", len(ck.W3), L * c.Hidden * c.Dim},
		{"RMSFinal", len(ck.RMSFinal), c.Dim},
		{"WCls", len(ck.WCls), c.Vocab * c.Dim},
	} {
		if s.got != s.want {
			return fmt.Errorf("hfconvert: checkpoint %s has %d floats, config %+v needs %d", s.name, s.got, c, s.want)
		}
	}
	return nil
}

// permuteRoPE reorders the rows of w ([heads*hs, in]) within each head
// from run.c's interleaved RoPE pairs (2i, 2i+1) to HF's rotate_half pairs
// (i, i+hs/2): HF row i takes run.c row 2i, HF row hs/2+i takes row 2i+1.
// This is the permute of HF's convert_llama_weights_to_hf.py.
func permuteRoPE(w []float32, heads, hs, in int) []float32 {
	out := make([]float32, len(w))
	half := hs / 2
	for h := range heads {
		base := h * hs
		for j := range hs {
			src := 2 * j
			if j >= half {
				src = 2*(j-half) + 1
			}
			copy(out[(base+j)*in:(base+j+1)*in], w[(base+src)*in:(base+src+1)*in])
		}
	}
	return out
}

// Tensors returns the checkpoint's weights under HF LlamaForCausalLM's
// names and shapes, wq and wk permuted for HF's RoPE. lm_head.weight is
// present only when the classifier is not shared with the embedding.
func Tensors(ck *llama2c.Checkpoint) ([]Tensor, error) {
	if err := checkSizes(ck); err != nil {
		return nil, err
	}
	c := ck.Config
	dim, hid, hs := c.Dim, c.Hidden, c.HeadSize()
	q, kv := c.Heads*hs, c.KVDim()
	ts := []Tensor{{Name: "model.embed_tokens.weight", Shape: []int{c.Vocab, dim}, Data: ck.TokenEmbedding}}
	for l := range c.Layers {
		p := fmt.Sprintf("model.layers.%d.", l)
		ts = append(ts,
			Tensor{p + "input_layernorm.weight", []int{dim}, ck.RMSAtt[l*dim : (l+1)*dim]},
			Tensor{p + "self_attn.q_proj.weight", []int{q, dim}, permuteRoPE(ck.WQ[l*q*dim:(l+1)*q*dim], c.Heads, hs, dim)},
			Tensor{p + "self_attn.k_proj.weight", []int{kv, dim}, permuteRoPE(ck.WK[l*kv*dim:(l+1)*kv*dim], c.KVHeads, hs, dim)},
			Tensor{p + "self_attn.v_proj.weight", []int{kv, dim}, ck.WV[l*kv*dim : (l+1)*kv*dim]},
			Tensor{p + "self_attn.o_proj.weight", []int{dim, q}, ck.WO[l*dim*q : (l+1)*dim*q]},
			Tensor{p + "post_attention_layernorm.weight", []int{dim}, ck.RMSFFN[l*dim : (l+1)*dim]},
			Tensor{p + "mlp.gate_proj.weight", []int{hid, dim}, ck.W1[l*hid*dim : (l+1)*hid*dim]},
			Tensor{p + "mlp.up_proj.weight", []int{hid, dim}, ck.W3[l*hid*dim : (l+1)*hid*dim]},
			Tensor{p + "mlp.down_proj.weight", []int{dim, hid}, ck.W2[l*dim*hid : (l+1)*dim*hid]},
		)
	}
	ts = append(ts, Tensor{"model.norm.weight", []int{dim}, ck.RMSFinal})
	if !c.SharedClassifier {
		ts = append(ts, Tensor{"lm_head.weight", []int{c.Vocab, dim}, ck.WCls})
	}
	return ts, nil
}

// FromLlama2c writes ckpt and tok as a Hugging Face Llama folder in
// outDir (created if needed): config.json, model.safetensors,
// tokenizer.json and tokenizer_config.json. See the package doc for the
// choices made.
func FromLlama2c(ckpt *llama2c.Checkpoint, tok *llama2c.Tokenizer, outDir string) error {
	if ckpt == nil || tok == nil {
		return fmt.Errorf("hfconvert: nil checkpoint or tokenizer")
	}
	if len(tok.Vocab) != ckpt.Config.Vocab {
		return fmt.Errorf("hfconvert: tokenizer has %d tokens, checkpoint vocab_size is %d", len(tok.Vocab), ckpt.Config.Vocab)
	}
	tensors, err := Tensors(ckpt)
	if err != nil {
		return err
	}
	tokJSON, err := TokenizerJSON(tok)
	if err != nil {
		return err
	}
	cfgJSON, err := marshalJSON(ConfigFor(ckpt.Config))
	if err != nil {
		return fmt.Errorf("hfconvert: config.json: %w", err)
	}
	tokCfgJSON, err := marshalJSON(tokenizerConfigFor(ckpt.Config))
	if err != nil {
		return fmt.Errorf("hfconvert: tokenizer_config.json: %w", err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("hfconvert: %w", err)
	}
	if err := WriteSafetensorsFile(filepath.Join(outDir, WeightsFile), tensors, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("hfconvert: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{ConfigFile, cfgJSON}, {TokenizerFile, tokJSON}, {TokenizerConfigFile, tokCfgJSON}} {
		if err := os.WriteFile(filepath.Join(outDir, f.name), f.data, 0o644); err != nil {
			return fmt.Errorf("hfconvert: %w", err)
		}
	}
	return nil
}
