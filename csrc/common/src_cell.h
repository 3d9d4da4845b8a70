// src_cell.h — the Spiking Recurrent Cell: one neuron, one time step, forward and backward.
//
// This is the only place the cell equations are written in C++; the CPU kernels
// (csrc/recurrence/cpu) and the CUDA kernels (csrc/recurrence/cuda) both include it unchanged.
// It follows docs/model.md:
//
//   i[t]    = alpha i[t-1] + u[t]
//   x[t]    = rho tanh(i[t] / rho)
//   zs[t]   = z_hyp + (z_dep - z_hyp) sigmoid(gate_slope (h[t-1] - gate_threshold))
//   c[t]    = tanh(x[t] + r h[t-1] + r_s hs[t-1] + b)
//   h[t]    = z h[t-1] + (1 - z) c[t]
//   hs[t]   = zs[t] hs[t-1] + (1 - zs[t]) h[t-1]
//   s[t]    = relu(h[t])
//
// `Acc` is the precision of the math (float for float/half/bfloat16 storage, double for
// double). Nothing here touches memory: the kernels load, call these, and store.
#pragma once

#include <cstdint>

#include "src_constants.h"
#include "src_math.h"

namespace srcext {

// The constants of one neuron in the precision of the math, with the derived ones
// precomputed. From a column of the constants tensor (src_constants.h): v[j * stride] is
// constant j. Per layer they are built once (on the host for the CUDA launches), per neuron
// once per neuron, before its time loop.
//
// X(field) for each field, given and derived: the CPU kernels lay them out per lane from this
// list (BlockConstants).
// clang-format off
#define SRC_CELL_CONSTANT_FIELDS(X)                                       \
  X(alpha) X(rho) X(inv_rho) X(r) X(r_s) X(z) X(one_minus_z) X(z_hyp)   \
  X(z_dep_minus_z_hyp) X(gate_slope) X(gate_threshold) X(gate_log2_slope) \
  X(gate_log2_offset) X(r_arg) X(r_s_arg) X(neg_rho_arg)
// clang-format on

template <typename Acc>
struct CellConstants {
  // inv_rho = 1 / rho, one_minus_z = 1 - z, z_dep_minus_z_hyp = z_dep - z_hyp; the gate's
  // argument in base-2 units, gate_log2_slope h + gate_log2_offset
  // = gate_slope (h - gate_threshold) log2(e): one FMA a step (math::sigmoid_exp2); r_arg,
  // r_s_arg, neg_rho_arg: r, r_s, -rho in the units of the candidate's tanh argument
  // (math::tanh_arg_scale).
#define SRC_DECLARE_FIELD(name) Acc name;
  SRC_CELL_CONSTANT_FIELDS(SRC_DECLARE_FIELD)
#undef SRC_DECLARE_FIELD

  // (Positional: the fields in the order of SRC_CELL_CONSTANT_FIELDS.) arg_scale: that of the
  // math the constants are for; a CUDA launcher builds them on the host for the device's.
  SRC_HD static CellConstants from(const Acc* v, int64_t stride,
                                   Acc arg_scale = math::tanh_arg_scale<Acc>()) {
    const Acc rho = v[kRho * stride], z = v[kZ * stride], z_hyp = v[kZHyp * stride];
    const Acc slope = v[kGateSlope * stride], threshold = v[kGateThreshold * stride];
    const Acc log2_slope = slope * Acc(1.44269504088896340736);
    const Acc r = v[kR * stride], r_s = v[kRS * stride];
    return {v[kAlpha * stride],
            rho,
            Acc(1) / rho,
            r,
            r_s,
            z,
            Acc(1) - z,
            z_hyp,
            v[kZDep * stride] - z_hyp,
            slope,
            threshold,
            log2_slope,
            -log2_slope * threshold,
            r * arg_scale,
            r_s * arg_scale,
            -rho * arg_scale};
  }
};

// The state carried from step to step.
template <typename Acc>
struct CellState {
  Acc i, h, hs;
};

// What one step computes besides the new state: the values its derivatives need.
template <typename Acc>
struct StepTrace {
  Acc dx_di;  // 1 - tanh(i/rho)^2, d x / d i
  Acc gate;  // sigmoid(gate_slope (h[t-1] - gate_threshold))
  Acc c;  // the candidate c[t]
  Acc dc;  // 1 - c^2, d c / d pre
  Acc x;  // x[t] (read only by the constants' gradients)
};

// The equations of one step, one function each. cell_step composes them; the CPU kernels
// call them phase by phase over a block of neurons (more independent work in flight).

// i[t] = alpha i[t-1] + u[t]
template <typename Acc>
SRC_HD Acc cell_integrate(const CellConstants<Acc>& k, Acc i_prev, Acc u) {
  return k.alpha * i_prev + u;
}

// x[t] = rho tanh(i[t] / rho); also d x / d i.
template <typename Acc>
SRC_HD void cell_input(const CellConstants<Acc>& k, Acc i, Acc& x, Acc& dx_di) {
  math::scaled_tanh_and_derivative(i, k.rho, k.inv_rho, x, dx_di);
}

// sigmoid(gate_slope (h[t-1] - gate_threshold)), the voltage dependence of zs[t].
template <typename Acc>
SRC_HD Acc cell_gate(const CellConstants<Acc>& k, Acc h_prev) {
  return math::sigmoid_exp2(k.gate_log2_slope * h_prev + k.gate_log2_offset);
}

// The bias in the units of the candidate's tanh argument (the CPU kernels' cell_candidate).
template <typename Acc>
SRC_HD Acc candidate_bias_arg(Acc b) {
  return b * math::tanh_arg_scale<Acc>();
}

// The bias as cell_step takes it: b and b + rho in the candidate argument's units (the second
// for math::scaled_tanh_term). The kernels make each neuron's once, before its time loop.
template <typename Acc>
struct CandidateBias {
  Acc arg, at_rho_arg;
};

template <typename Acc>
SRC_HD CandidateBias<Acc> candidate_bias(const CellConstants<Acc>& k, Acc b) {
  return {candidate_bias_arg(b), candidate_bias_arg(b) - k.neg_rho_arg};
}

// x[t] = rho tanh(i[t] / rho) with dx_scale d x / d i, and the candidate argument's term of x
// and the bias (math::scaled_tanh_term).
template <typename Acc>
SRC_HD Acc cell_input_term(const CellConstants<Acc>& k, Acc i, const CandidateBias<Acc>& bias,
                           Acc& x, Acc& dx_di, Acc dx_scale) {
  return math::scaled_tanh_term(i, k.rho, k.inv_rho, k.neg_rho_arg, bias.arg, bias.at_rho_arg, x,
                                dx_di, dx_scale);
}

// c[t] = tanh(x[t] + r h[t-1] + r_s hs[t-1] + b) from its argument's term of x and b
// (math::tanh_of_arg: one FMA per further term); also d c / d pre.
template <typename Acc>
SRC_HD void cell_candidate_of_term(const CellConstants<Acc>& k, Acc term, Acc h_prev, Acc hs_prev,
                                   Acc& c, Acc& dc) {
  math::tanh_of_arg(term + k.r_arg * h_prev + k.r_s_arg * hs_prev, c, dc);
}

// The same from x and the bias in the argument's units (candidate_bias_arg), summed in the
// reference's order, x + r h + r_s hs + b: the CPU kernels' association (cell_step's, through
// cell_input_term, adds the bias to x first, which the GPU's folding needs; a bistable neuron
// can grow the difference of one rounding to 1e-4 over a few steps).
template <typename Acc>
SRC_HD void cell_candidate(const CellConstants<Acc>& k, Acc x, Acc h_prev, Acc hs_prev,
                           Acc bias_arg, Acc& c, Acc& dc) {
  math::tanh_of_arg(
      x * math::tanh_arg_scale<Acc>() + k.r_arg * h_prev + k.r_s_arg * hs_prev + bias_arg, c, dc);
}

template <typename Acc>
SRC_HD Acc slow_gate(const CellConstants<Acc>& k, Acc gate) {
  return k.z_hyp + k.z_dep_minus_z_hyp * gate;
}

// h[t] = z h[t-1] + (1 - z) c[t];  hs[t] = zs[t] hs[t-1] + (1 - zs[t]) h[t-1]
template <typename Acc>
SRC_HD void cell_advance(const CellConstants<Acc>& k, const StepTrace<Acc>& tr, Acc& h, Acc& hs) {
  const Acc zs = slow_gate(k, tr.gate);
  const Acc h_new = k.z * h + k.one_minus_z * tr.c;
  hs = h + zs * (hs - h);  // zs hs + (1 - zs) h: the slow state follows the OLD h
  h = h_new;
}

// One whole step with drive u[t]: advances the state, returns what its backward needs.
// bias: the neuron's, as candidate_bias gives it. dx_scale: tr.dx_di comes multiplied by it
// (the detached backward's (1 - z), detached_du_term: no instruction more).
template <typename Acc>
SRC_HD StepTrace<Acc> cell_step(const CellConstants<Acc>& k, Acc u, const CandidateBias<Acc>& bias,
                                CellState<Acc>& s, Acc dx_scale = Acc(1)) {
  StepTrace<Acc> tr;
  s.i = cell_integrate(k, s.i, u);
  const Acc term = cell_input_term(k, s.i, bias, tr.x, tr.dx_di, dx_scale);
  tr.gate = cell_gate(k, s.h);
  cell_candidate_of_term(k, term, s.h, s.hs, tr.c, tr.dc);
  cell_advance(k, tr, s.h, s.hs);
  return tr;
}

// What a step emits: max(h, floor), NaN passing through. floor 0 gives the spike relu(h);
// floor -inf the membrane voltage h itself (the layer's output="voltage"). One maximum with a
// register either way, so the choice costs the kernels no branch.
template <typename Acc>
SRC_HD Acc emitted(Acc h, Acc floor) {
  return math::max_nan(h, floor);
}

// Gradients flowing backward through time, held per neuron.
//   dh, dhs: dL/dh[t], dL/dhs[t] from later steps (and from the final state);
//   di:      dL/di[t] from later steps.
template <typename Acc>
struct CellGrad {
  Acc dh, dhs, di;
};

// The local derivatives of step t that its backward needs: everything the backward walk
// reads from the forward, so that a kernel can compute them while recomputing the step and
// keep only these (the GPU keeps a whole chunk of them in registers).
template <typename Acc>
struct StepJacobian {
  bool spiking;  // h[t] > 0: the relu passes dL/ds[t] on
  Acc dh_dpre;  // (1 - z) (1 - c^2): d h[t] / d pre-activation of c[t]
  Acc dx_di;  // d x[t] / d i[t]
  Acc dhs_dh_prev;  // d hs[t] / d h[t-1]: (1 - zs) + (hs[t-1] - h[t-1]) d zs / d h[t-1]
  Acc dhs_dhs_prev;  // d hs[t] / d hs[t-1]: zs
};

// The gradient signals of step t, as step_backward computes them.
template <typename Acc>
struct StepSignals {
  Acc dh;  // dL/dh[t], the spike's included
  Acc dhs;  // dL/dhs[t]
  Acc dpre;  // dL/d pre-activation of c[t]
  Acc di;  // dL/di[t]
};

// h_new is h[t], as cell_step left it.
template <typename Acc>
SRC_HD StepJacobian<Acc> step_jacobian(const CellConstants<Acc>& k, const StepTrace<Acc>& tr,
                                       Acc h_prev, Acc hs_prev, Acc h_new) {
  const Acc zs = slow_gate(k, tr.gate);
  // d gate / d arg = gate (1 - gate) = gate - gate^2: one FMA
  const Acc dzs_dh = k.z_dep_minus_z_hyp * k.gate_slope * (tr.gate - tr.gate * tr.gate);
  return {h_new > Acc(0), k.one_minus_z * tr.dc, tr.dx_di,
          (Acc(1) - zs) + (hs_prev - h_prev) * dzs_dh, zs};
}

// Backward of step t from its Jacobian. On entry g holds the gradients w.r.t. the state after
// step t; on exit w.r.t. the state before it. Returns dL/du[t]; adds this step's dL/dbias to
// dbias.
//   kDetach: h[t-1], hs[t-1] are constants of step t (paper's training setting).
//   kStraightThrough: d s / d h = 1 instead of the true relu derivative.
// `sig` receives the step's gradient signals (what its constants' gradients are made of).
template <bool kDetach, bool kStraightThrough, typename Acc>
SRC_HD Acc step_backward(const CellConstants<Acc>& k, const StepJacobian<Acc>& jac, Acc grad_spike,
                         CellGrad<Acc>& g, Acc& dbias, StepSignals<Acc>& sig) {
  // s[t] = relu(h[t])
  const Acc dh = g.dh + (kStraightThrough || jac.spiking ? grad_spike : Acc(0));
  // c[t] = tanh(pre), pre = x + r h[t-1] + r_s hs[t-1] + b;  h[t] = z h[t-1] + (1 - z) c[t]
  const Acc dpre = dh * jac.dh_dpre;
  dbias += dpre;
  // x = rho tanh(i / rho); i[t] = alpha i[t-1] + u[t]
  const Acc di = g.di + dpre * jac.dx_di;
  sig = {dh, g.dhs, dpre, di};
  g.di = k.alpha * di;
  if (kDetach) {
    g.dh = Acc(0);
    g.dhs = Acc(0);
  } else {
    // h[t] depends on h[t-1] through z and through c (r); hs[t] on h[t-1] and hs[t-1] through
    // the Jacobian's two entries; c on hs[t-1] through r_s.
    const Acc dhs = g.dhs;
    g.dh = dh * k.z + dpre * k.r + dhs * jac.dhs_dh_prev;
    g.dhs = dpre * k.r_s + dhs * jac.dhs_dhs_prev;
  }
  return di;
}

template <bool kDetach, bool kStraightThrough, typename Acc>
SRC_HD Acc step_backward(const CellConstants<Acc>& k, const StepJacobian<Acc>& jac, Acc grad_spike,
                         CellGrad<Acc>& g, Acc& dbias) {
  StepSignals<Acc> unused;  // dead code unless read: the compiler drops it
  return step_backward<kDetach, kStraightThrough>(k, jac, grad_spike, g, dbias, unused);
}

// The detached backward (kDetach) as the GPU's chunk kernels run it. With h[t-1], hs[t-1] constants of step t, step_backward reduces to
//   dL/du[t] = di[t] = alpha di[t+1] + q[t],   q[t] = dpre[t] dx/di[t],
//   dpre[t] = (1 - z) a[t],   a[t] = dh[t] (1 - c[t]^2),
// and q[t] and a[t] need only step t's own values: the recompute makes them (one register a
// step where the Jacobian took two), the walk back is one FMA a step, and (1 - z) is paid
// nowhere: q takes it from a dx_di that cell_step(.., k.one_minus_z) made scaled, the bias's
// gradient, the sum of a[t], once at the end. Returns q[t]; sets a to a[t] (the constants'
// gradients read it) and adds it to a_sum.
//   tr: from cell_step(k, u, bias, s, k.one_minus_z); dh: dL/dh[t] (spike_grad's, plus the
//   final state's at the last step).
template <typename Acc>
SRC_HD Acc detached_du_term(const StepTrace<Acc>& tr, Acc dh, Acc& a, Acc& a_sum) {
  a = dh * tr.dc;
  a_sum += a;
  return a * tr.dx_di;
}

// dL/dh[t] that s[t] = relu(h[t]) passes on: where h[t] > 0, or always (kStraightThrough).
template <bool kStraightThrough, typename Acc>
SRC_HD Acc spike_grad(Acc h_new, Acc grad_spike) {
  return kStraightThrough || h_new > Acc(0) ? grad_spike : Acc(0);
}

// ---- gradients of the constants --------------------------------------------------------------
//
// d L / d constant = sum over steps of the step's gradient signals times the local derivative
// of the step's outputs with respect to the constant, which reads these values of the step.
template <typename Acc>
struct StepInputs {
  Acc i_prev;  // i[t-1]
  Acc dx_drho;  // d x[t] / d rho = tanh(i/rho) - (i/rho) (1 - tanh(i/rho)^2)
  Acc h_prev;  // h[t-1]
  Acc hs_prev;  // hs[t-1]
  Acc c;  // c[t]
  Acc gate;  // sigmoid(gate_slope (h[t-1] - gate_threshold))
};

// i_new is i[t] and tr the trace of the step that cell_step ran from (i_prev, h_prev, hs_prev).
template <typename Acc>
SRC_HD StepInputs<Acc> step_inputs(const CellConstants<Acc>& k, const StepTrace<Acc>& tr,
                                   Acc i_prev, Acc i_new, Acc h_prev, Acc hs_prev) {
  return {i_prev, (tr.x - i_new * tr.dx_di) * k.inv_rho, h_prev, hs_prev, tr.c, tr.gate};
}

// Per neuron, the constants' gradients summed over its steps (rows as src_constants.h).
template <typename Acc>
struct ConstantGrads {
  Acc v[kNumConstants];
};

template <typename Acc>
SRC_HD void zero_constant_grads(ConstantGrads<Acc>& d) {
  for (int j = 0; j < kNumConstants; ++j) d.v[j] = Acc(0);
}

// The same from a trace whose dx_di came scaled (cell_step(.., dx_scale): the detached
// backward's): d x / d rho from x itself, tanh(y) - y (1 - tanh(y)^2), tanh(y) = x / rho,
// y = i / rho (what step_inputs computes as (x - i dx/di) / rho).
template <typename Acc>
SRC_HD StepInputs<Acc> step_inputs_of_x(const CellConstants<Acc>& k, const StepTrace<Acc>& tr,
                                        Acc i_prev, Acc i_new, Acc h_prev, Acc hs_prev) {
  const Acc t = tr.x * k.inv_rho, y = i_new * k.inv_rho;
  return {i_prev, t - y * (Acc(1) - t * t), h_prev, hs_prev, tr.c, tr.gate};
}

// Step t's contribution to the constants' gradients, the same whether h[t-1], hs[t-1] are
// detached or not (the constants act on step t directly): all but alpha's term, the one
// sig.di enters (the detached backward, detached_chunk, adds these in its recompute and
// alpha's once its walk has made di), then accumulate_constant_grads, the whole of it.
template <typename Acc>
SRC_HD void accumulate_constant_grads_but_alpha(const CellConstants<Acc>& k,
                                                const StepInputs<Acc>& in,
                                                const StepSignals<Acc>& sig,
                                                ConstantGrads<Acc>& d) {
  d.v[kRho] += sig.dpre * in.dx_drho;  // x[t] = rho tanh(i[t] / rho)
  d.v[kR] += sig.dpre * in.h_prev;  // pre = x + r h[t-1] + r_s hs[t-1] + b
  d.v[kRS] += sig.dpre * in.hs_prev;
  d.v[kZ] += sig.dh * (in.h_prev - in.c);  // h[t] = z h[t-1] + (1 - z) c[t]
  // hs[t] = zs hs[t-1] + (1 - zs) h[t-1], zs = z_hyp + (z_dep - z_hyp) gate
  const Acc dzs = sig.dhs * (in.hs_prev - in.h_prev);
  d.v[kZHyp] += dzs * (Acc(1) - in.gate);
  d.v[kZDep] += dzs * in.gate;
  // gate = sigmoid(gate_slope (h[t-1] - gate_threshold))
  const Acc darg = dzs * k.z_dep_minus_z_hyp * in.gate * (Acc(1) - in.gate);
  d.v[kGateSlope] += darg * (in.h_prev - k.gate_threshold);
  d.v[kGateThreshold] -= darg * k.gate_slope;
}

template <typename Acc>
SRC_HD void accumulate_constant_grads(const CellConstants<Acc>& k, const StepInputs<Acc>& in,
                                      const StepSignals<Acc>& sig, ConstantGrads<Acc>& d) {
  d.v[kAlpha] += sig.di * in.i_prev;  // i[t] = alpha i[t-1] + u[t]
  accumulate_constant_grads_but_alpha(k, in, sig, d);
}

// Backward of step t from its trace and the state before it (h[t] recomputed for the relu).
// straight_through: kStraightThrough given at run time (the CPU kernels: one instance for both
// settings, a select per lane); the GPU kernels leave it to the template flag.
template <bool kDetach, bool kStraightThrough, typename Acc>
SRC_HD Acc cell_step_backward(const CellConstants<Acc>& k, const StepTrace<Acc>& tr, Acc h_prev,
                              Acc hs_prev, Acc grad_spike, CellGrad<Acc>& g, Acc& dbias,
                              StepSignals<Acc>& sig, bool straight_through = kStraightThrough) {
  const Acc h_new = k.z * h_prev + k.one_minus_z * tr.c;  // as cell_advance computes it
  StepJacobian<Acc> jac = step_jacobian(k, tr, h_prev, hs_prev, h_new);
  jac.spiking = jac.spiking || straight_through;  // the relu passes the spike's gradient on
  return step_backward<kDetach, kStraightThrough>(k, jac, grad_spike, g, dbias, sig);
}

template <bool kDetach, bool kStraightThrough, typename Acc>
SRC_HD Acc cell_step_backward(const CellConstants<Acc>& k, const StepTrace<Acc>& tr, Acc h_prev,
                              Acc hs_prev, Acc grad_spike, CellGrad<Acc>& g, Acc& dbias) {
  StepSignals<Acc> unused;
  return cell_step_backward<kDetach, kStraightThrough>(k, tr, h_prev, hs_prev, grad_spike, g, dbias,
                                                       unused);
}

}  // namespace srcext
