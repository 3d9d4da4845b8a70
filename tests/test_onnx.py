"""ONNX export of the layers (issue 36): torch.onnx.export, its dynamo exporter and its legacy
(TorchScript) one, on both backends; the exported graph keeps the time loop (an ONNX Scan or
Loop), so onnxruntime runs it at other T and B than the traced ones and matches PyTorch.
SRCCell exports a single step (x, state) -> (spikes, state) for streaming runtimes."""

import warnings

import pytest
import torch
from torch import nn

from srcext import SRC, SRCCell

from helpers import requires_fused

ort = pytest.importorskip("onnxruntime")  # a test dependency (pip install .[test])
pytest.importorskip("onnxscript")  # the dynamo exporter's

EXPORTERS = ["dynamo", "legacy"]
BACKENDS = ["reference", pytest.param("fused", marks=requires_fused)]
# onnxruntime's tanh / sigmoid are not torch's to the last bit; over T steps of the cell the
# difference grows to ~3e-5 in float32.
TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-10}
TRACED = (7, 3)  # (T, B) at export
RUN_AT = [(7, 3), (23, 5), (1, 1)]  # onnxruntime, new sizes included


def export(model, args, path, exporter, input_names, output_names, dynamic, kwargs=None, dynamic_shapes=None):
    """torch.onnx.export as its documentation shows, per exporter; ``dynamic``: input or output
    name -> {dim: name} of the dynamic dimensions (the legacy exporter's dynamic_axes); the
    dynamo exporter's dynamic_shapes follow from it, or are given (nested inputs)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's TracerWarnings
        if exporter == "dynamo":
            shapes = dynamic_shapes or [
                {d: torch.export.Dim(n, min=1) for d, n in dynamic.get(name, {}).items()} or None
                for name in input_names
            ]
            torch.onnx.export(
                model,
                args,
                path,
                kwargs=kwargs,
                dynamo=True,
                input_names=input_names,
                output_names=output_names,
                dynamic_shapes=shapes,
                verbose=False,
            )
        else:
            torch.onnx.export(
                model,
                args,
                path,
                kwargs=kwargs,
                dynamo=False,
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=dynamic,
            )
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def drive(T, B, F, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, F, generator=g, dtype=torch.float64) * 1.5).to(dtype)


def assert_matches(onnx_outputs, torch_outputs, dtype):
    for got, want in zip(onnx_outputs, torch_outputs):
        got = torch.from_numpy(got)
        assert got.shape == want.shape and got.dtype == want.dtype
        assert (got - want).abs().max().item() <= TOLERANCE[dtype] * max(1.0, want.abs().max().item())


# The gradient setting does not change the exported (inference) graph, and float64 takes the
# same path as float32: those cases run with the long ones (-m slow).
@pytest.mark.parametrize(
    "detach_recurrent", [True, pytest.param(False, marks=pytest.mark.slow)], ids=["detach", "exact"]
)
@pytest.mark.parametrize(
    "dtype", [torch.float32, pytest.param(torch.float64, marks=pytest.mark.slow)], ids=["f32", "f64"]
)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("exporter", EXPORTERS)
def test_layer_exports_with_dynamic_T_and_B(tmp_path, exporter, backend, dtype, detach_recurrent):
    torch.manual_seed(0)
    kwargs = dict(weight_scale=4.0, init_rate=None, backend=backend, detach_recurrent=detach_recurrent)
    model = SRC(5, 8, num_layers=2, **kwargs).to(dtype).eval()
    names = ["x"], ["spikes", "i_n", "h_n", "hs_n"]
    dynamic = {"x": {0: "T", 1: "B"}, "spikes": {0: "T", 1: "B"}}
    session = export(model, (drive(*TRACED, 5, dtype, 0),), tmp_path / "src.onnx", exporter, *names, dynamic)
    fired = 0.0
    for T, B in RUN_AT:
        x = drive(T, B, 5, dtype, T)
        with torch.no_grad():
            spikes, state = model(x)
        assert_matches(session.run(None, {"x": x.numpy()}), (spikes, *state), dtype)
        fired += spikes.gt(0).sum().item()
    assert fired > 0  # the comparison covers spiking neurons


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("exporter", EXPORTERS)
def test_layer_with_lengths_and_bidirectional_exports(tmp_path, exporter, backend):
    torch.manual_seed(1)
    model = SRC(4, 6, bidirectional=True, weight_scale=4.0, init_rate=None, backend=backend).eval()
    x = drive(*TRACED, 4, torch.float32, 0)
    lengths = torch.tensor([7, 4, 1])
    dynamic = {"x": {0: "T", 1: "B"}, "lengths": {0: "B"}, "spikes": {0: "T", 1: "B"}}
    session = export(
        model,
        (x,),
        tmp_path / "src.onnx",
        exporter,
        ["x", "lengths"],
        ["spikes", "i_n", "h_n", "hs_n"],
        dynamic,
        kwargs={"lengths": lengths},
    )
    for T, B in RUN_AT[1:]:
        x = drive(T, B, 4, torch.float32, T)
        lengths = torch.randint(0, T + 1, (B,))
        lengths[0] = T
        with torch.no_grad():
            spikes, state = model(x, lengths=lengths)
        assert_matches(session.run(None, {"x": x.numpy(), "lengths": lengths.numpy()}), (spikes, *state), torch.float32)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("exporter", EXPORTERS)
def test_cell_exports_one_streaming_step(tmp_path, exporter, backend):
    """SRCCell: (x, state) -> (spikes, state), stepped by onnxruntime with its own state fed
    back, at another batch size than the traced one, as PyTorch steps it."""
    torch.manual_seed(2)
    cell = SRCCell(5, 8, weight_scale=4.0, init_rate=None, backend=backend).eval()
    state = cell.initial_state(3)
    x = drive(1, 3, 5, torch.float32, 0)[0]
    names = ["x", "i", "h", "hs"], ["spikes", "i_next", "h_next", "hs_next"]
    dynamic = {name: {0: "B"} for name in names[0] + names[1]}
    # A plain tuple, not the SRCState: torch.export's guard code substitutes input paths by string
    # replacement, and the named tuple's ".h" is a prefix of its ".hs" (a SyntaxError in torch).
    state = tuple(state)
    batch = torch.export.Dim("B", min=1)
    shapes = ({0: batch}, ({0: batch}, {0: batch}, {0: batch}))
    session = export(cell, (x, state), tmp_path / "cell.onnx", exporter, *names, dynamic, dynamic_shapes=shapes)
    B = 4
    state = cell.initial_state(B)
    onnx_state = [s.numpy() for s in state]
    fired = 0.0
    for x in drive(12, B, 5, torch.float32, 1):
        with torch.no_grad():
            spikes, state = cell(x, state)
        outs = session.run(None, dict(zip(names[0], [x.numpy(), *onnx_state])))
        assert_matches(outs, (spikes, *state), torch.float32)
        onnx_state = outs[1:]
        fired += spikes.gt(0).sum().item()
    assert fired > 0


class RNNModel(nn.Module):
    """pytorch/examples' word_language_model RNNModel with its nn.GRU swapped for SRC: encoder,
    recurrent layers, decoder, log-softmax output, init_hidden."""

    def __init__(self, ntoken, ninp, nhid, nlayers, backend, dropout=0.2):
        super().__init__()
        self.ntoken, self.nlayers, self.nhid = ntoken, nlayers, nhid
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = SRC(ninp, nhid, nlayers, dropout=dropout, backend=backend)
        self.decoder = nn.Linear(nhid, ntoken)

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output).view(-1, self.ntoken)
        return nn.functional.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz):  # the example's, for every type but LSTM (GRU's h)
        weight = next(self.parameters())
        return weight.new_zeros(self.nlayers, bsz, self.nhid)


@pytest.mark.parametrize("backend", BACKENDS)
def test_word_language_model_onnx_export(tmp_path, backend):
    """The example's --onnx-export path (export_onnx: eval, a zero LongTensor input and
    init_hidden, torch.onnx.export(model, (dummy_input, hidden), path)) after a training step
    (which runs the data init), then onnxruntime against PyTorch."""
    torch.manual_seed(3)
    model = RNNModel(50, 16, 16, 2, backend)
    tokens = torch.randint(0, 50, (10, 4))
    out, _ = model(tokens, model.init_hidden(4))
    nn.functional.nll_loss(out, torch.randint(0, 50, (40,))).backward()
    seq_len, batch_size = 10, 4
    model.eval()
    dummy_input = torch.LongTensor(seq_len * batch_size).zero_().view(-1, batch_size)
    hidden = model.init_hidden(batch_size)
    torch.onnx.export(model, (dummy_input, hidden), str(tmp_path / "lm.onnx"))
    session = ort.InferenceSession(str(tmp_path / "lm.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        want, state = model(tokens, hidden)
    feed = dict(zip([i.name for i in session.get_inputs()], [tokens.numpy(), hidden.numpy()]))
    assert_matches(session.run(None, feed), (want, *state), torch.float32)
