"""Per-step tasks side by side: which SRC readout learns them, against nn.GRU and snnTorch.

Three tasks where an answer is due at every step (unlike the paper's classifiers, which read
one answer from the rates at the end):

* ``current``: name the current token (no memory needed);
* ``previous``: name the previous token (one step of memory);
* ``wordlm``: next-word prediction on a small synthetic corpus (a first-order Markov chain
  over 200 words, 5 successors each: a model that learns the bigrams reaches the chain's
  perplexity, one that does not stays near the unigram perplexity). Made by this script from
  a seed, so it needs no download.

Every model is Embedding -> recurrent part -> Linear per step, trained with Adam on the same
batches:

* ``gru``: torch.nn.GRU;
* ``src_spikes``: srcext.SRC with defaults, reading its spikes;
* ``src_learned``: SRC with its cell constants learned per neuron (spikes);
* ``src_voltage``: SRC(output="voltage", learn=CELL_CONSTANTS, per_neuron=True), reading the
  membrane voltage h of every step (the paper's constants, learned per neuron);
* ``src_recipe``: the per-step recipe of docs/guide.md (PER_STEP_RECIPE below), reading
  spikes;
* ``snntorch_leaky`` / ``snntorch_rleaky``: snnTorch's Leaky / RLeaky hidden layer (learned
  beta) with a non-resetting Leaky output layer whose membrane is the readout, as in
  snnTorch's tutorials (skipped when snntorch is not installed).

    python examples/per_step_tasks.py --out examples/results/per_step_tasks.json

prints a table (accuracy for the token tasks, validation perplexity for the word LM) and
writes it as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time

import torch
from torch import nn

import srcext
from srcext.constants import CELL_CONSTANTS

VOCAB_TOKENS = 20  # the token tasks' vocabulary
CORPUS_WORDS = 200  # the word LM's vocabulary
SUCCESSORS = (0.5, 0.2, 0.15, 0.1, 0.05)  # each word's successor probabilities
MODELS = ("gru", "src_spikes", "src_learned", "src_voltage", "src_recipe", "snntorch_leaky", "snntorch_rleaky")
# The per-step recipe of docs/guide.md: no fast positive or slow negative feedback (r = r_s = 0:
# no bistability, no refractory period, so a step's spikes answer for that step), a short
# input integrator (alpha 0.1, learned per neuron: it grows where memory pays) and a wide input
# bound (rho 10: with r = 0 a neuron fires once its drive x exceeds -b >= 4, which rho = 3
# would never allow).
PER_STEP_RECIPE = dict(alpha=0.1, r=0.0, r_s=0.0, rho=10.0, learn=CELL_CONSTANTS, per_neuron=True)


# ---- data -------------------------------------------------------------------------------


def markov_corpus(tokens: int, seed: int) -> torch.Tensor:
    """A word sequence from a fixed random first-order chain (the chain depends on nothing
    but the constants above; ``seed`` draws the sequence)."""
    chain = torch.Generator().manual_seed(1234)
    successors = torch.stack(
        [torch.randperm(CORPUS_WORDS, generator=chain)[: len(SUCCESSORS)] for _ in range(CORPUS_WORDS)]
    )
    probs = torch.tensor(SUCCESSORS)
    g = torch.Generator().manual_seed(seed)
    choice = torch.multinomial(probs, tokens, replacement=True, generator=g)
    out = torch.empty(tokens, dtype=torch.long)
    word = 0
    for n in range(tokens):
        word = int(successors[word, choice[n]])
        out[n] = word
    return out


def chain_perplexity() -> float:
    """The perplexity of a model that knows the chain: exp of its successor entropy."""
    return math.exp(-sum(p * math.log(p) for p in SUCCESSORS))


def token_batch(task: str, steps: int, batch: int, g: torch.Generator):
    tokens = torch.randint(0, VOCAB_TOKENS, (steps, batch), generator=g)
    targets = tokens if task == "current" else torch.roll(tokens, 1, 0)
    return tokens, targets, 1  # the first step of "previous" has no answer: scored from step 1


def corpus_batch(corpus: torch.Tensor, steps: int, batch: int, g: torch.Generator):
    starts = torch.randint(0, len(corpus) - steps - 1, (batch,), generator=g)
    window = torch.stack([corpus[s : s + steps + 1] for s in starts.tolist()], dim=1)
    return window[:-1], window[1:], 5  # the first steps have too little context to score


# ---- models -----------------------------------------------------------------------------


class Recurrent(nn.Module):
    """Embedding -> recurrent core -> Linear, time-major (T, B) tokens to (T, B, V) logits."""

    def __init__(self, kind: str, vocab: int, embed: int, hidden: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.kind = kind
        if kind == "gru":
            self.core = nn.GRU(embed, hidden)
        elif kind == "src_spikes":
            self.core = srcext.SRC(embed, hidden)
        elif kind == "src_learned":
            self.core = srcext.SRC(embed, hidden, learn=CELL_CONSTANTS, per_neuron=True)
        elif kind == "src_voltage":
            self.core = srcext.SRC(embed, hidden, output="voltage", learn=CELL_CONSTANTS, per_neuron=True)
        elif kind == "src_recipe":
            self.core = srcext.SRC(embed, hidden, **PER_STEP_RECIPE)
        else:
            raise ValueError(kind)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens):
        out, _ = self.core(self.embed(tokens))
        return self.head(out)


class SnnTorchNet(nn.Module):
    """snnTorch, as its tutorials build it: Linear -> Leaky (or RLeaky) -> Linear -> Leaky
    output layer without reset, whose membrane potential is read at every step."""

    def __init__(self, kind: str, vocab: int, embed: int, hidden: int):
        import snntorch as snn

        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.fc1 = nn.Linear(embed, hidden)
        self.recurrent = kind == "snntorch_rleaky"
        if self.recurrent:
            self.lif1 = snn.RLeaky(beta=0.9, linear_features=hidden, learn_beta=True)
        else:
            self.lif1 = snn.Leaky(beta=0.9, learn_beta=True)
        self.fc2 = nn.Linear(hidden, vocab)
        self.lif2 = snn.Leaky(beta=0.9, learn_beta=True, reset_mechanism="none")

    def forward(self, tokens):
        current = self.fc1(self.embed(tokens))
        if self.recurrent:
            spk1, mem1 = self.lif1.init_rleaky()
        else:
            mem1 = self.lif1.init_leaky()
        mem2 = self.lif2.init_leaky()
        outputs = []
        for t in range(current.shape[0]):
            if self.recurrent:
                spk1, mem1 = self.lif1(current[t], spk1, mem1)
            else:
                spk1, mem1 = self.lif1(current[t], mem1)
            _, mem2 = self.lif2(self.fc2(spk1), mem2)
            outputs.append(mem2)
        return torch.stack(outputs)


def build(kind: str, vocab: int, embed: int, hidden: int) -> nn.Module:
    if kind.startswith("snntorch"):
        return SnnTorchNet(kind, vocab, embed, hidden)
    return Recurrent(kind, vocab, embed, hidden)


# ---- training ---------------------------------------------------------------------------


def score(model, batch_fn, batches: int, seed: int):
    """(accuracy, perplexity) over ``batches`` held-out batches, in eval mode."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    correct = total = 0
    nll = 0.0
    with torch.no_grad():
        for _ in range(batches):
            x, y, skip = batch_fn(g)
            logits = model(x)[skip:]
            y = y[skip:]
            flat = logits.reshape(-1, logits.shape[-1])
            nll += nn.functional.cross_entropy(flat, y.reshape(-1), reduction="sum").item()
            correct += (logits.argmax(-1) == y).sum().item()
            total += y.numel()
    model.train()
    return correct / total, math.exp(nll / total)


def run(task: str, kind: str, args) -> dict:
    torch.manual_seed(args.seed)
    if task == "wordlm":
        train, valid = markov_corpus(args.corpus_tokens, seed=1), markov_corpus(args.corpus_tokens // 10, seed=2)
        vocab, steps = CORPUS_WORDS, 35

        def train_batch(g):
            return corpus_batch(train, steps, args.batch, g)

        def valid_batch(g):
            return corpus_batch(valid, steps, args.batch, g)

    else:
        vocab, steps = VOCAB_TOKENS, 30

        def train_batch(g):
            return token_batch(task, steps, args.batch, g)

        valid_batch = train_batch  # fresh random tokens: every batch is held out
    model = build(kind, vocab, args.embed, args.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    g = torch.Generator().manual_seed(args.seed)
    iterations = args.lm_steps if task == "wordlm" else args.steps
    start = time.perf_counter()
    for _ in range(iterations):
        x, y, skip = train_batch(g)
        logits = model(x)[skip:]
        loss = nn.functional.cross_entropy(logits.reshape(-1, vocab), y[skip:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    seconds = time.perf_counter() - start
    accuracy, perplexity = score(model, valid_batch, args.eval_batches, seed=10_000 + args.seed)
    result = {"accuracy": accuracy, "perplexity": perplexity, "train_seconds": round(seconds, 1)}
    if kind.startswith("src"):
        x, _, _ = valid_batch(torch.Generator().manual_seed(7))
        result["firing_rate"] = srcext.firing_rates(model.core, model.embed(x))["l0"]
    return result


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", nargs="+", default=["current", "previous", "wordlm"])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--steps", type=int, default=300, help="Adam steps of the token tasks")
    ap.add_argument("--lm-steps", type=int, default=1000, help="Adam steps of the word LM")
    ap.add_argument("--corpus-tokens", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--embed", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--eval-batches", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    models = list(args.models)
    try:
        import snntorch  # noqa: F401
    except ImportError:
        skipped = [m for m in models if m.startswith("snntorch")]
        if skipped:
            print(f"snntorch is not installed: skipping {', '.join(skipped)} (pip install snntorch)")
        models = [m for m in models if not m.startswith("snntorch")]
    results = {task: {} for task in args.tasks}
    for task in args.tasks:
        for kind in models:
            results[task][kind] = run(task, kind, args)
            r = results[task][kind]
            print(
                f"{task:9s} {kind:16s} accuracy {r['accuracy']:.3f}  perplexity {r['perplexity']:8.2f}"
                f"  ({r['train_seconds']:.0f} s)" + (f"  firing {r['firing_rate']:.3f}" if "firing_rate" in r else ""),
                flush=True,
            )
    report = {
        "command": "python examples/per_step_tasks.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "settings": vars(args),
        "chain_perplexity": chain_perplexity(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "results": results,
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    return report


if __name__ == "__main__":
    main()
