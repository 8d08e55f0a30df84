// Fused selective scan (Mamba S6) on the CPU, forward and backward, for the canonical layout of
// canonical.py (float32 tensors, any strides). Built at first use by cpu_scan.py.
//
// Work split: one task per (batch, block of DB channels), walking the K directions one after
// another, so that a task owns its output rows (the K outputs summed into one map, and the
// gradients of u and z shared by the directions, need no locks). Inside a task each sequence is
// walked once, step by step, through the index map; the state of the DB channels x N states lives
// in a small array, and every per-step loop runs over the DB channels (contiguous in memory for
// the token-major layouts the backbones hand over), which the compiler vectorises.
//
// Backward: the forward saves the state every CHUNK steps; the backward walks the chunks in
// reverse, recomputes a chunk's states (and decays) into a buffer, then walks its steps in reverse
// with the adjoint mu_t = a_t lambda_t carried from step to step. Gradients of B and C (summed
// over channels) and of A, D, delta_bias (summed over the batch) go to per-thread buffers that are
// added at the end.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace {

constexpr int DB = 16;      // channels per task
constexpr int CHUNK = 64;   // steps between saved states

// exp(x) to about 2 ulp: 2^k e^r with |r| <= ln2 / 2 (Cody-Waite), degree-7 polynomial; branch-free
// so that a loop over channels vectorises. Below -87.3 it returns about 1e-38 instead of 0.
inline float exp_f(float x) {
  x = std::min(std::max(x, -87.3f), 88.7f);
  float k = std::nearbyint(x * 1.44269504088896341f);
  float r = std::fma(k, -0.693145751953125f, x);
  r = std::fma(k, -1.428606765330187e-06f, r);
  float p = 1.9841269841e-4f;
  p = std::fma(p, r, 1.3888888889e-3f);
  p = std::fma(p, r, 8.3333333333e-3f);
  p = std::fma(p, r, 4.1666666667e-2f);
  p = std::fma(p, r, 1.6666666667e-1f);
  p = std::fma(p, r, 0.5f);
  p = std::fma(p, r, 1.0f);
  p = std::fma(p, r, 1.0f);
  int32_t bits = (static_cast<int32_t>(k) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

// log(1 + e) for e in [0, 1]: 2 atanh(s), s = e / (2 + e) <= 1/3, odd series to s^13 (exact for tiny e)
inline float log1p_unit(float e) {
  float s = e / (2.0f + e);
  float s2 = s * s;
  float p = 1.0f / 13.0f;
  p = std::fma(p, s2, 1.0f / 11.0f);
  p = std::fma(p, s2, 1.0f / 9.0f);
  p = std::fma(p, s2, 1.0f / 7.0f);
  p = std::fma(p, s2, 1.0f / 5.0f);
  p = std::fma(p, s2, 1.0f / 3.0f);
  p = std::fma(p, s2, 1.0f);
  return 2.0f * s * p;
}

inline float softplus_f(float x) { return std::max(x, 0.0f) + log1p_unit(exp_f(-std::fabs(x))); }
inline float sigmoid_f(float x) { return 1.0f / (1.0f + exp_f(-x)); }

// The sum of DB values as a tree: vectorised halving adds (a reduction loop is summed lane by lane
// in order, which strict IEEE semantics force on the compiler).
inline float sum_lanes(const float* v) {
  float t[DB / 2];
#pragma omp simd
  for (int j = 0; j < DB / 2; ++j) t[j] = v[j] + v[j + DB / 2];
  for (int w = DB / 4; w >= 1; w /= 2)
#pragma omp simd
    for (int j = 0; j < w; ++j) t[j] += t[j + w];
  return t[0];
}

// body(std::integral_constant<int64_t, 1>) when n == 1, so that N = 1 (VMamba) is compiled as a
// constant and its per-state loops vanish; body(std::integral_constant<int64_t, 0>) (N at run time)
// otherwise.
template <class Body>
void with_state_count(int64_t n, Body&& body) {
  if (n == 1) body(std::integral_constant<int64_t, 1>{});
  else body(std::integral_constant<int64_t, 0>{});
}

// A strided float tensor of up to 5 dims, indexed with int64 strides (missing dims have stride 0).
struct View {
  const float* p = nullptr;
  float* w = nullptr;
  int64_t s[5] = {0, 0, 0, 0, 0};
  View() = default;
  explicit View(const at::Tensor& t, bool broadcast_dim1 = false) {
    p = t.data_ptr<float>();
    w = const_cast<float*>(p);
    for (int64_t i = 0; i < t.dim(); ++i) s[i] = t.size(i) == 1 ? 0 : t.stride(i);
    (void)broadcast_dim1;
  }
};

struct Shape {
  int64_t batch, K, D, L, N, dpg;
};

struct Inputs {
  View u, delta, A, B, C, Dv, z, bias, y, ypre;
  const int64_t* index = nullptr;
  bool has_D, has_z, has_bias, softplus, merge_sum;
};

// The per-step rows of one task's DB channels.
struct Step {
  float u[DB], raw[DB], dt[DB], dtu[DB], zv[DB];
};

inline int64_t position(const int64_t* index, int64_t k, int64_t L, int64_t t) {
  return index ? index[k * L + t] : t;
}

constexpr int64_t PREFETCH = 12;  // steps ahead whose rows are requested from memory

// Requests the rows of position p (u, delta, z and the output row) ahead of their use: the scan
// order makes the hardware prefetchers miss (a column-major walk jumps W rows per step).
inline void prefetch_step(const Inputs& in, const View& out, int64_t b, int64_t k, int64_t ko, int64_t d0,
                          int64_t p) {
  __builtin_prefetch(in.u.p + b * in.u.s[0] + k * in.u.s[1] + d0 * in.u.s[2] + p * in.u.s[3]);
  __builtin_prefetch(in.delta.p + b * in.delta.s[0] + k * in.delta.s[1] + d0 * in.delta.s[2] + p * in.delta.s[3]);
  __builtin_prefetch(in.B.p + b * in.B.s[0] + k * in.B.s[1] + p * in.B.s[4]);
  __builtin_prefetch(in.C.p + b * in.C.s[0] + k * in.C.s[1] + p * in.C.s[4]);
  if (in.has_z) __builtin_prefetch(in.z.p + b * in.z.s[0] + k * in.z.s[1] + d0 * in.z.s[2] + p * in.z.s[3]);
  if (out.p) __builtin_prefetch(out.p + b * out.s[0] + ko * out.s[1] + d0 * out.s[2] + p * out.s[3], 1);
}

// nd values at stride s into out[0..DB), zeros after them
inline void gather_row(const float* src, int64_t s, int nd, float* out) {
  if (s == 1 && nd == DB) {
    std::memcpy(out, src, DB * sizeof(float));
    return;
  }
  for (int j = 0; j < DB; ++j) out[j] = j < nd ? src[j * s] : 0.0f;
}

inline void load_step(const Inputs& in, int64_t b, int64_t k, int64_t d0, int nd, int64_t p, const float* bias,
                      Step& st) {
  gather_row(in.u.p + b * in.u.s[0] + k * in.u.s[1] + d0 * in.u.s[2] + p * in.u.s[3], in.u.s[2], nd, st.u);
  gather_row(in.delta.p + b * in.delta.s[0] + k * in.delta.s[1] + d0 * in.delta.s[2] + p * in.delta.s[3],
             in.delta.s[2], nd, st.raw);
  if (in.softplus) {
#pragma omp simd
    for (int j = 0; j < DB; ++j) {
      st.raw[j] += bias[j];
      st.dt[j] = softplus_f(st.raw[j]);
    }
  } else {
#pragma omp simd
    for (int j = 0; j < DB; ++j) {
      st.raw[j] += bias[j];
      st.dt[j] = st.raw[j];
    }
  }
#pragma omp simd
  for (int j = 0; j < DB; ++j) {
    st.dt[j] = j < nd ? st.dt[j] : 0.0f;
    st.dtu[j] = st.dt[j] * st.u[j];
  }
  if (in.has_z)
    gather_row(in.z.p + b * in.z.s[0] + k * in.z.s[1] + d0 * in.z.s[2] + p * in.z.s[3], in.z.s[2], nd, st.zv);
}

// B or C of state n at position p for the task's channels (one value when they share a group).
inline void load_bc(const View& v, int64_t b, int64_t k, const int64_t* group, int64_t n, int64_t p, float* out) {
  const float* base = v.p + b * v.s[0] + k * v.s[1] + n * v.s[3] + p * v.s[4];
  if (group[0] == group[DB - 1]) {
    float x = base[group[0] * v.s[2]];
    for (int j = 0; j < DB; ++j) out[j] = x;
  } else {
    for (int j = 0; j < DB; ++j) out[j] = base[group[j] * v.s[2]];
  }
}

struct Params {  // one direction's per-channel parameters for a task, A transposed to (N, DB)
  std::vector<float> A;  // N * DB
  float Dv[DB], bias[DB];
  int64_t group[DB];
};

void load_params(const Inputs& in, const Shape& sh, int64_t k, int64_t d0, int nd, Params& pr) {
  pr.A.assign(sh.N * DB, 0.0f);
  for (int j = 0; j < DB; ++j) {
    int64_t d = d0 + std::min<int64_t>(j, nd - 1);
    pr.group[j] = d / sh.dpg;
    pr.Dv[j] = (in.has_D && j < nd) ? in.Dv.p[k * in.Dv.s[0] + d * in.Dv.s[1]] : 0.0f;
    pr.bias[j] = (in.has_bias && j < nd) ? in.bias.p[k * in.bias.s[0] + d * in.bias.s[1]] : 0.0f;
    for (int64_t n = 0; n < sh.N; ++n)
      pr.A[n * DB + j] = j < nd ? in.A.p[k * in.A.s[0] + d * in.A.s[1] + n * in.A.s[2]] : 0.0f;
  }
}

inline void store_rows(const View& v, int64_t b, int64_t k, int64_t d0, int nd, int64_t p, const float* val,
                       bool accumulate) {
  float* out = v.w + b * v.s[0] + k * v.s[1] + d0 * v.s[2] + p * v.s[3];
  const int64_t s = v.s[2];
  if (s == 1 && nd == DB) {
    if (accumulate) {
#pragma omp simd
      for (int j = 0; j < DB; ++j) out[j] += val[j];
    } else {
      std::memcpy(out, val, DB * sizeof(float));
    }
  } else if (accumulate) {
    for (int j = 0; j < nd; ++j) out[j * s] += val[j];
  } else {
    for (int j = 0; j < nd; ++j) out[j * s] = val[j];
  }
}

}  // namespace

// Forward. Returns y (B, D, L) summed over directions or (B, K, D, L); the states saved every
// CHUNK steps (B, K, n_saved, N, D) when save_states; the last state (B, K, D, N) when want_last;
// y before the gate (B, K, D, L) when saving states with a gate.
std::vector<at::Tensor> scan_fwd(at::Tensor u, at::Tensor delta, at::Tensor A, at::Tensor Bm, at::Tensor Cm,
                                 c10::optional<at::Tensor> Dv, c10::optional<at::Tensor> z,
                                 c10::optional<at::Tensor> bias, c10::optional<at::Tensor> index, bool softplus,
                                 bool merge_sum, bool save_states, bool want_last) {
  const Shape sh{u.size(0), A.size(0), A.size(1), u.size(3), A.size(2), A.size(1) / Bm.size(2)};
  auto f32 = u.options();
  at::Tensor y = merge_sum ? at::zeros({sh.batch, sh.L, sh.D}, f32).transpose(1, 2)
                           : at::empty({sh.batch, sh.K, sh.L, sh.D}, f32).transpose(2, 3);
  const int64_t n_saved = std::max<int64_t>((sh.L + CHUNK - 1) / CHUNK - 1, 1);
  at::Tensor states = save_states ? at::empty({sh.batch, sh.K, n_saved, sh.N, sh.D}, f32) : at::empty({0}, f32);
  at::Tensor last = want_last ? at::empty({sh.batch, sh.K, sh.D, sh.N}, f32) : at::empty({0}, f32);
  bool keep_ypre = save_states && z.has_value();
  at::Tensor ypre = keep_ypre ? at::empty({sh.batch, sh.K, sh.L, sh.D}, f32).transpose(2, 3) : at::empty({0}, f32);
  at::Tensor idx = index.has_value() ? index->contiguous() : at::Tensor();

  Inputs in;
  in.u = View(u); in.delta = View(delta); in.A = View(A); in.B = View(Bm); in.C = View(Cm);
  in.has_D = Dv.has_value(); in.has_z = z.has_value(); in.has_bias = bias.has_value();
  if (in.has_D) in.Dv = View(*Dv);
  if (in.has_z) in.z = View(*z);
  if (in.has_bias) in.bias = View(*bias);
  in.index = index.has_value() ? idx.data_ptr<int64_t>() : nullptr;
  in.softplus = softplus; in.merge_sum = merge_sum;
  View yv(y), pv = keep_ypre ? View(ypre) : View();
  if (merge_sum) { yv.s[3] = yv.s[2]; yv.s[2] = yv.s[1]; yv.s[1] = 0; }  // (B, D, L) as (B, 1, D, L)
  float* st = save_states ? states.data_ptr<float>() : nullptr;
  float* lst = want_last ? last.data_ptr<float>() : nullptr;
  const int64_t n_dblocks = (sh.D + DB - 1) / DB;

  with_state_count(sh.N, [&](auto fixed_n) {
    const int64_t N = decltype(fixed_n)::value > 0 ? decltype(fixed_n)::value : sh.N;
    at::parallel_for(0, sh.batch * n_dblocks, 1, [&](int64_t begin, int64_t end) {
      Params pr;
      Step stp;
      std::vector<float> h(N * DB);
      float Bv[DB], Cv[DB], yv_[DB];
      for (int64_t task = begin; task < end; ++task) {
        const int64_t b = task / n_dblocks, d0 = (task % n_dblocks) * DB;
        const int nd = static_cast<int>(std::min<int64_t>(DB, sh.D - d0));
        for (int64_t k = 0; k < sh.K; ++k) {
          load_params(in, sh, k, d0, nd, pr);
          std::fill(h.begin(), h.end(), 0.0f);
          for (int64_t t = 0; t < sh.L; ++t) {
            const int64_t p = position(in.index, k, sh.L, t);
            if (t + PREFETCH < sh.L)
              prefetch_step(in, yv, b, k, merge_sum ? 0 : k, d0, position(in.index, k, sh.L, t + PREFETCH));
            load_step(in, b, k, d0, nd, p, pr.bias, stp);
#pragma omp simd
            for (int j = 0; j < DB; ++j) yv_[j] = pr.Dv[j] * stp.u[j];
            for (int64_t n = 0; n < N; ++n) {
              load_bc(in.B, b, k, pr.group, n, p, Bv);
              load_bc(in.C, b, k, pr.group, n, p, Cv);
              float* hn = h.data() + n * DB;
              const float* An = pr.A.data() + n * DB;
#pragma omp simd
              for (int j = 0; j < DB; ++j) {
                hn[j] = exp_f(stp.dt[j] * An[j]) * hn[j] + stp.dtu[j] * Bv[j];
                yv_[j] += hn[j] * Cv[j];
              }
            }
            if (in.has_z) {
              if (keep_ypre) store_rows(pv, b, k, d0, nd, p, yv_, false);
#pragma omp simd
              for (int j = 0; j < DB; ++j) yv_[j] *= stp.zv[j] * sigmoid_f(stp.zv[j]);
            }
            store_rows(yv, b, merge_sum ? 0 : k, d0, nd, p, yv_, merge_sum);
            if (st && (t + 1) % CHUNK == 0 && t + 1 < sh.L) {
              float* out = st + (((b * sh.K + k) * n_saved + (t / CHUNK)) * N) * sh.D + d0;
              for (int64_t n = 0; n < N; ++n)
                for (int j = 0; j < nd; ++j) out[n * sh.D + j] = h[n * DB + j];
            }
          }
          if (lst) {
            float* out = lst + ((b * sh.K + k) * sh.D + d0) * N;
            for (int j = 0; j < nd; ++j)
              for (int64_t n = 0; n < N; ++n) out[j * N + n] = h[n * DB + j];
          }
        }
      }
    });
  });
  return {y, states, last, ypre};
}

// Backward. gy is (B, D, L) (merge_sum) or (B, K, D, L); glast (B, K, D, N) or absent.
// Returns the gradients of u, delta, A, B, C, D, z, delta_bias (fp32; absent inputs give empty).
std::vector<at::Tensor> scan_bwd(at::Tensor gy, c10::optional<at::Tensor> glast, at::Tensor u, at::Tensor delta,
                                 at::Tensor A, at::Tensor Bm, at::Tensor Cm, c10::optional<at::Tensor> Dv,
                                 c10::optional<at::Tensor> z, c10::optional<at::Tensor> bias,
                                 c10::optional<at::Tensor> index, at::Tensor states, c10::optional<at::Tensor> ypre,
                                 bool softplus, bool merge_sum) {
  const Shape sh{u.size(0), A.size(0), A.size(1), u.size(3), A.size(2), A.size(1) / Bm.size(2)};
  const int64_t G = Bm.size(2);
  auto f32 = u.options();
  const bool shared_u = u.size(1) == 1 && sh.K > 1;
  at::Tensor gu = at::zeros({sh.batch, u.size(1), sh.L, sh.D}, f32).transpose(2, 3);
  at::Tensor gdelta = at::empty({sh.batch, sh.K, sh.L, sh.D}, f32).transpose(2, 3);
  at::Tensor gz = z.has_value() ? at::zeros({sh.batch, z->size(1), sh.L, sh.D}, f32).transpose(2, 3)
                                : at::empty({0}, f32);
  const int threads = at::get_num_threads();
  const int64_t bc_numel = sh.batch * sh.K * G * sh.N * sh.L;
  std::vector<float> gB_t(threads * bc_numel, 0.0f), gC_t(threads * bc_numel, 0.0f);
  const int64_t kd = sh.K * sh.D;
  std::vector<float> gA_t(threads * kd * sh.N, 0.0f), gD_t(threads * kd, 0.0f), gb_t(threads * kd, 0.0f);
  at::Tensor idx = index.has_value() ? index->contiguous() : at::Tensor();
  const int64_t n_saved = states.size(2);
  const float* st = states.data_ptr<float>();

  Inputs in;
  in.u = View(u); in.delta = View(delta); in.A = View(A); in.B = View(Bm); in.C = View(Cm);
  in.has_D = Dv.has_value(); in.has_z = z.has_value(); in.has_bias = bias.has_value();
  if (in.has_D) in.Dv = View(*Dv);
  if (in.has_z) in.z = View(*z);
  if (in.has_bias) in.bias = View(*bias);
  in.index = index.has_value() ? idx.data_ptr<int64_t>() : nullptr;
  in.softplus = softplus; in.merge_sum = merge_sum;
  View gyv(gy), guv(gu), gdv(gdelta), gzv = z.has_value() ? View(gz) : View();
  View pv = ypre.has_value() ? View(*ypre) : View();
  View glv = glast.has_value() ? View(*glast) : View();
  if (merge_sum) { gyv.s[3] = gyv.s[2]; gyv.s[2] = gyv.s[1]; gyv.s[1] = 0; }
  const int64_t n_dblocks = (sh.D + DB - 1) / DB;

  with_state_count(sh.N, [&](auto fixed_n) {
    const int64_t N = decltype(fixed_n)::value > 0 ? decltype(fixed_n)::value : sh.N;
    at::parallel_for(0, sh.batch * n_dblocks, 1, [&](int64_t begin, int64_t end) {
      const int tid = at::get_thread_num();
      float* gB = gB_t.data() + tid * bc_numel;
      float* gC = gC_t.data() + tid * bc_numel;
      float* gA = gA_t.data() + tid * kd * N;
      float* gDsum = gD_t.data() + tid * kd;
      float* gbsum = gb_t.data() + tid * kd;
      Params pr;
      const int64_t NB = N * DB;
      std::vector<float> H((CHUNK + 1) * NB), Adec(CHUNK * NB), mu(NB), gAloc(NB);
      std::vector<Step> steps(CHUNK);
      std::vector<int64_t> pos(CHUNK);
      float Bv[DB], Cv[DB], g[DB], gdt[DB], guv_[DB], gzv_[DB], gD_[DB], gb_[DB];
      for (int64_t task = begin; task < end; ++task) {
        const int64_t b = task / n_dblocks, d0 = (task % n_dblocks) * DB;
        const int nd = static_cast<int>(std::min<int64_t>(DB, sh.D - d0));
        for (int64_t k = 0; k < sh.K; ++k) {
          load_params(in, sh, k, d0, nd, pr);
          std::fill(gAloc.begin(), gAloc.end(), 0.0f);
          std::fill(gD_, gD_ + DB, 0.0f);
          std::fill(gb_, gb_ + DB, 0.0f);
          for (int64_t n = 0; n < N; ++n)  // mu after the last step: the gradient of the last state
            for (int j = 0; j < DB; ++j)
              mu[n * DB + j] = (glast.has_value() && j < nd)
                                   ? glv.p[b * glv.s[0] + k * glv.s[1] + (d0 + j) * glv.s[2] + n * glv.s[3]] : 0.0f;
          const int64_t n_chunks = (sh.L + CHUNK - 1) / CHUNK;
          for (int64_t c = n_chunks - 1; c >= 0; --c) {
            const int64_t t0 = c * CHUNK, len = std::min<int64_t>(CHUNK, sh.L - t0);
            // H[0] = state before the chunk; H[i + 1] = state after its step i
            for (int64_t n = 0; n < N; ++n)
              for (int j = 0; j < DB; ++j)
                H[n * DB + j] = (c > 0 && j < nd)
                                    ? st[(((b * sh.K + k) * n_saved + (c - 1)) * N + n) * sh.D + d0 + j] : 0.0f;
            for (int64_t i = 0; i < len; ++i) {
              pos[i] = position(in.index, k, sh.L, t0 + i);
              if (t0 + i + PREFETCH < sh.L)
                prefetch_step(in, gyv, b, k, merge_sum ? 0 : k, d0, position(in.index, k, sh.L, t0 + i + PREFETCH));
              load_step(in, b, k, d0, nd, pos[i], pr.bias, steps[i]);
              for (int64_t n = 0; n < N; ++n) {
                load_bc(in.B, b, k, pr.group, n, pos[i], Bv);
                const float* hp = H.data() + i * NB + n * DB;
                float* hn = H.data() + (i + 1) * NB + n * DB;
                float* an = Adec.data() + i * NB + n * DB;
                const float* An = pr.A.data() + n * DB;
#pragma omp simd
                for (int j = 0; j < DB; ++j) {
                  an[j] = exp_f(steps[i].dt[j] * An[j]);
                  hn[j] = an[j] * hp[j] + steps[i].dtu[j] * Bv[j];
                }
              }
            }
            for (int64_t i = len - 1; i >= 0; --i) {
              const Step& s = steps[i];
              const int64_t p = pos[i];
              const float* gp = gyv.p + b * gyv.s[0] + (merge_sum ? 0 : k) * gyv.s[1] + d0 * gyv.s[2] + p * gyv.s[3];
              gather_row(gp, gyv.s[2], nd, g);
              if (in.has_z) {
                float yrow[DB];
                gather_row(pv.p + b * pv.s[0] + k * pv.s[1] + d0 * pv.s[2] + p * pv.s[3], pv.s[2], nd, yrow);
#pragma omp simd
                for (int j = 0; j < DB; ++j) {
                  float sz = sigmoid_f(s.zv[j]);
                  gzv_[j] = g[j] * yrow[j] * sz * (1.0f + s.zv[j] * (1.0f - sz));
                  g[j] *= s.zv[j] * sz;
                }
              }
#pragma omp simd
              for (int j = 0; j < DB; ++j) {
                gdt[j] = 0.0f;
                guv_[j] = g[j] * pr.Dv[j];
                gD_[j] += g[j] * s.u[j];
              }
              for (int64_t n = 0; n < N; ++n) {
                load_bc(in.B, b, k, pr.group, n, p, Bv);
                load_bc(in.C, b, k, pr.group, n, p, Cv);
                const float* hp = H.data() + i * NB + n * DB;
                const float* hn = H.data() + (i + 1) * NB + n * DB;
                const float* an = Adec.data() + i * NB + n * DB;
                const float* An = pr.A.data() + n * DB;
                float* m = mu.data() + n * DB;
                float* ga = gAloc.data() + n * DB;
                float lamv[DB], hg[DB];
#pragma omp simd
                for (int j = 0; j < DB; ++j) {
                  float lam = Cv[j] * g[j] + m[j];
                  float ah = an[j] * hp[j];
                  gdt[j] += lam * (Bv[j] * s.u[j] + An[j] * ah);
                  guv_[j] += lam * Bv[j] * s.dt[j];
                  ga[j] += lam * s.dt[j] * ah;
                  lamv[j] = lam * s.dtu[j];
                  hg[j] = hn[j] * g[j];
                  m[j] = an[j] * lam;
                }
                if (pr.group[0] == pr.group[DB - 1]) {
                  const int64_t o = (((b * sh.K + k) * G + pr.group[0]) * sh.L + p) * N + n;
                  gB[o] += sum_lanes(lamv);
                  gC[o] += sum_lanes(hg);
                } else {  // the task's channels span several groups of B / C
                  for (int j = 0; j < nd; ++j) {
                    const int64_t o = (((b * sh.K + k) * G + pr.group[j]) * sh.L + p) * N + n;
                    gB[o] += lamv[j];
                    gC[o] += hg[j];
                  }
                }
              }
#pragma omp simd
              for (int j = 0; j < DB; ++j) {
                float gd = in.softplus ? gdt[j] * sigmoid_f(s.raw[j]) : gdt[j];
                gdt[j] = j < nd ? gd : 0.0f;
                gb_[j] += gdt[j];
              }
              store_rows(gdv, b, k, d0, nd, p, gdt, false);
              store_rows(guv, b, shared_u ? 0 : k, d0, nd, p, guv_, true);
              if (in.has_z) store_rows(gzv, b, (z->size(1) == 1) ? 0 : k, d0, nd, p, gzv_, true);
            }
          }
          for (int j = 0; j < nd; ++j) {
            gDsum[k * sh.D + d0 + j] += gD_[j];
            gbsum[k * sh.D + d0 + j] += gb_[j];
            for (int64_t n = 0; n < N; ++n) gA[(k * sh.D + d0 + j) * N + n] += gAloc[n * DB + j];
          }
        }
      }
    });
  });

  auto sum_threads = [&](std::vector<float>& buf, int64_t numel, at::IntArrayRef shape) {
    at::Tensor out = at::zeros(shape, f32);
    float* o = out.data_ptr<float>();
    for (int t = 0; t < threads; ++t)
      for (int64_t i = 0; i < numel; ++i) o[i] += buf[t * numel + i];
    return out;
  };
  // accumulated token-major (B, K, G, L, N): a step's N values share cache lines
  at::Tensor gBt = sum_threads(gB_t, bc_numel, {sh.batch, sh.K, G, sh.L, sh.N}).transpose(3, 4);
  at::Tensor gCt = sum_threads(gC_t, bc_numel, {sh.batch, sh.K, G, sh.L, sh.N}).transpose(3, 4);
  at::Tensor gAt = sum_threads(gA_t, kd * sh.N, {sh.K, sh.D, sh.N});
  at::Tensor gDt = sum_threads(gD_t, kd, {sh.K, sh.D});
  at::Tensor gbt = sum_threads(gb_t, kd, {sh.K, sh.D});
  return {gu, gdelta, gAt, gBt, gCt, gDt, gz, gbt};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("scan_fwd", &scan_fwd, "selective scan forward (CPU, fused)");
  m.def("scan_bwd", &scan_bwd, "selective scan backward (CPU, fused)");
}
