// Binding of the inference chain (native/cpu/inference_blocks.h): the blocks of a network at
// inference as one call.
//
// inferenceChain(spec: Float64Array, x, y, ...weights)
//   spec = [n, c, h, w, steps, then per step:
//           conv:  0, k, kh, kw, sh, sw, ph, pw, groups, bias, bn, eps, relu, pool, pkh, pkw, psh, psw
//           dense: 1, out, bias, bn, eps, relu]
//   (bias, bn, relu, pool: 0 or 1). x is (n, c, h, w); each step takes the previous one's output
//   (a dense step its per-sample values as one row), y receives the last one's.
//   weights, per step in order: w, then bias when bias, then gamma, beta, mean, var when bn.
// A typed array rather than an array of numbers: at batch 1 reading sixty array elements one by
// one through Node-API cost more than a block's arithmetic. Every number is checked as the other
// bindings check theirs, and every weight's size against the shapes, before anything runs.
#include <cmath>
#include <string>
#include <vector>

#include "addon.h"
#include "../cpu/inference_blocks.h"
#include "args.h"

namespace kg {
namespace {

constexpr int64_t kMaxSteps = 1024;
constexpr size_t kHeader = 5, kConvFields = 18, kDenseFields = 6;

// Reads spec's numbers with the checks of Args. A number is named by its step (-1: the header)
// and field; the name is spelled out only for an error message (this runs on every call).
class Spec {
 public:
  Spec(const Args& a, Napi::Float64Array v) : a_(a), v_(v) {}
  size_t size() const { return v_.ElementLength(); }
  // An integer in [min, 2^53].
  int64_t size_at(size_t i, int64_t step, const char* field, int64_t min = 0) const {
    const double d = at(i, step, field);
    if (!std::isfinite(d) || d != std::floor(d) || d < double(min) || d > double(Args::kMaxSize)) {
      fail(step, field, "must be an integer in [" + std::to_string(min) + ", 2^53], got " + Args::number(d));
    }
    return int64_t(d);
  }
  bool flag_at(size_t i, int64_t step, const char* field) const {
    const double d = at(i, step, field);
    if (d != 0.0 && d != 1.0) fail(step, field, "must be 0 or 1, got " + Args::number(d));
    return d == 1.0;
  }
  float eps_at(size_t i, int64_t step, const char* field) const {
    const double d = at(i, step, field);
    if (!std::isfinite(d) || d < 0.0 || d > 3.4e38) fail(step, field, "must be a finite number >= 0, got " + Args::number(d));
    return float(d);
  }
  // Throws a RangeError about a step's (or the header's) field.
  [[noreturn]] void fail(int64_t step, const char* field, const std::string& what) const {
    throw Napi::RangeError::New(a_.env(), a_.prefix() + name(step, field) + " " + what);
  }
  static std::string name(int64_t step, const char* field) {
    return (step < 0 ? std::string("spec ") : "spec step " + std::to_string(step) + " ") + field;
  }

 private:
  double at(size_t i, int64_t step, const char* field) const {
    if (i >= size()) fail(step, field, "is missing: the spec ends after " + std::to_string(size()) + " numbers");
    return v_[i];
  }
  const Args& a_;
  Napi::Float64Array v_;
};

// The per-sample shape between steps.
struct Activation {
  int64_t c, h, w;
};

// Reads one convolution step at spec[i..]; `in` is its input, updated to its output.
ChainStep conv_step(const Args& a, const Spec& sp, size_t i, int64_t n, Activation& in, int64_t step, bool& bias) {
  ChainStep st{};
  st.conv = true;
  ConvShape& s = st.shape;
  s = ConvShape{n, in.c, in.h, in.w, sp.size_at(i + 1, step, "k"), sp.size_at(i + 2, step, "kh", 1),
                sp.size_at(i + 3, step, "kw", 1), sp.size_at(i + 4, step, "sh", 1), sp.size_at(i + 5, step, "sw", 1),
                sp.size_at(i + 6, step, "ph"), sp.size_at(i + 7, step, "pw"), 0, 0,
                sp.size_at(i + 8, step, "groups", 1)};
  if (in.c % s.groups != 0 || s.k % s.groups != 0) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "step " + std::to_string(step) + ": groups (" + std::to_string(s.groups) +
                                             ") must divide both the input channels (" + std::to_string(in.c) +
                                             ") and the output channels (" + std::to_string(s.k) + ")");
  }
  if (s.h + 2 * s.ph < s.kh || s.w + 2 * s.pw < s.kw) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "step " + std::to_string(step) + ": the kernel is larger than the padded input (" +
                                             std::to_string(s.h) + " x " + std::to_string(s.w) + ")");
  }
  s.oh = (s.h + 2 * s.ph - s.kh) / s.sh + 1;
  s.ow = (s.w + 2 * s.pw - s.kw) / s.sw + 1;
  a.numel({n, s.c, s.kh, s.kw, s.oh, s.ow}, "the unfolded input");
  bias = sp.flag_at(i + 9, step, "bias");
  st.normalized = sp.flag_at(i + 10, step, "bn");
  st.bn.eps = sp.eps_at(i + 11, step, "eps");
  st.relu = sp.flag_at(i + 12, step, "relu");
  st.pooled = sp.flag_at(i + 13, step, "pool");
  in = {s.k, s.oh, s.ow};
  if (st.pooled) {
    PoolShape& p = st.pool;
    p = PoolShape{n, s.k, s.oh, s.ow, sp.size_at(i + 14, step, "pkh", 1), sp.size_at(i + 15, step, "pkw", 1),
                  sp.size_at(i + 16, step, "psh", 1), sp.size_at(i + 17, step, "psw", 1), 0, 0};
    if (s.oh < p.kh || s.ow < p.kw) {
      throw Napi::RangeError::New(a.env(), a.prefix() + "step " + std::to_string(step) + ": the pooling window is larger than the convolution's output (" +
                                               std::to_string(s.oh) + " x " + std::to_string(s.ow) + ")");
    }
    p.oh = (s.oh - p.kh) / p.sh + 1;
    p.ow = (s.ow - p.kw) / p.sw + 1;
    in = {s.k, p.oh, p.ow};
  }
  return st;
}

// Reads one dense step at spec[i..].
ChainStep dense_step(const Args& a, const Spec& sp, size_t i, Activation& in, int64_t step, bool& bias) {
  ChainStep st{};
  st.conv = false;
  st.in_features = a.numel({in.c, in.h, in.w}, "a sample's values");
  st.out_features = sp.size_at(i + 1, step, "out");
  bias = sp.flag_at(i + 2, step, "bias");
  st.normalized = sp.flag_at(i + 3, step, "bn");
  st.bn.eps = sp.eps_at(i + 4, step, "eps");
  st.relu = sp.flag_at(i + 5, step, "relu");
  in = {st.out_features, 1, 1};
  return st;
}

struct Parsed {
  int64_t n;
  Activation input;
  std::vector<ChainStep> steps;
  std::vector<bool> has_bias;
  size_t weights;  // how many weight storages follow x and y
};

Parsed parse(const Args& a, const Spec& sp) {
  Parsed p{};
  p.n = sp.size_at(0, -1, "n");
  p.input = {sp.size_at(1, -1, "c"), sp.size_at(2, -1, "h"), sp.size_at(3, -1, "w")};
  const int64_t count = sp.size_at(4, -1, "steps");
  if (count > kMaxSteps) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "at most " + std::to_string(kMaxSteps) + " steps, got " +
                                             std::to_string(count));
  }
  Activation act = p.input;
  size_t i = kHeader;
  for (int64_t s = 0; s < count; ++s) {
    const int64_t kind = sp.size_at(i, s, "kind");
    if (kind > 1) sp.fail(s, "kind", "must be 0 (convolution) or 1 (dense), got " + std::to_string(kind));
    bool bias = false;
    ChainStep st = kind == 0 ? conv_step(a, sp, i, p.n, act, s, bias) : dense_step(a, sp, i, act, s, bias);
    i += kind == 0 ? kConvFields : kDenseFields;
    st.out_per_sample = a.numel({act.c, act.h, act.w}, "a step's output");
    a.numel({p.n, st.out_per_sample}, "a step's output");
    p.has_bias.push_back(bias);
    p.weights += 1 + (bias ? 1 : 0) + (st.normalized ? 4 : 0);
    p.steps.push_back(st);
  }
  if (i != sp.size()) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "spec has " + std::to_string(sp.size()) + " numbers, its " +
                                             std::to_string(count) + " steps take " + std::to_string(i));
  }
  return p;
}

// Points each step at its weights (arguments from `first` on), checking their sizes and device.
void bind_weights(const Napi::CallbackInfo& info, const Args& a, Parsed& p, size_t first,
                  std::vector<const Storage*>& all) {
  size_t arg = first;
  for (size_t s = 0; s < p.steps.size(); ++s) {
    ChainStep& st = p.steps[s];
    const int64_t outputs = st.conv ? st.shape.k : st.out_features;
    // In errors, a weight is named by its position among the weights and what it is; the name is
    // spelled out only then.
    const auto take = [&](const char* what, int64_t numel) -> const float* {
      const size_t at = arg++;
      Storage* t = Storage::live(a.env(), info[at]);
      if (t == nullptr || t->numel() != numel) {
        const std::string name =
            "weights[" + std::to_string(at - first) + "] (step " + std::to_string(s) + " " + what + ")";
        a.expect_numel(a.storage(at, name.c_str()), numel, name.c_str());
      }
      all.push_back(t);
      return t->data(what);
    };
    st.w = st.conv ? take("w", a.numel({st.shape.k, st.shape.c / st.shape.groups, st.shape.kh, st.shape.kw}, "w"))
                   : take("w", a.numel({st.out_features, st.in_features}, "w"));
    if (p.has_bias[s]) st.bias = take("bias", outputs);
    if (st.normalized) {
      st.bn.gamma = take("gamma", outputs);
      st.bn.beta = take("beta", outputs);
      st.bn.mean = take("mean", outputs);
      st.bn.var = take("var", outputs);
    }
  }
}

Napi::Value inference_chain(const Napi::CallbackInfo& info) {
  Args a(info, "inferenceChain", info.Length());
  if (info.Length() < 3) {
    throw Napi::TypeError::New(a.env(), a.prefix() + "expected spec, x, y and the weights, got " +
                                            std::to_string(info.Length()) + " arguments");
  }
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    throw Napi::TypeError::New(a.env(), a.prefix() + "spec must be a Float64Array");
  }
  const Spec sp(a, info[0].As<Napi::Float64Array>());
  Parsed p = parse(a, sp);
  if (info.Length() != 3 + p.weights) {
    throw Napi::TypeError::New(a.env(), a.prefix() + "the spec's steps take " + std::to_string(p.weights) +
                                            " weights after spec, x and y, got " + std::to_string(info.Length() - 3));
  }
  Storage &x = a.storage(1, "x"), &y = a.storage(2, "y");
  a.expect_numel(x, {p.n, p.input.c, p.input.h, p.input.w}, "x");
  const int64_t out = p.steps.empty() ? a.numel({p.input.c, p.input.h, p.input.w}, "y") : p.steps.back().out_per_sample;
  a.expect_numel(y, {p.n, out}, "y");
  std::vector<const Storage*> all{&x, &y};
  bind_weights(info, a, p, 3, all);
  if (a.same_device(all) != Device::Cpu) {
    throw Napi::Error::New(a.env(), a.prefix() + "runs on the CPU only; on CUDA the layers run as their separate ops");
  }
  if (p.steps.empty()) {
    if (y.numel() > 0 && y.data("y") != x.data("x")) std::copy_n(x.data("x"), x.numel(), y.data("y"));
    return info.Env().Undefined();
  }
  KG_RUN_CPU(a, inference_chain(p.steps.data(), int64_t(p.steps.size()), p.n, x.data("x"), y.data("y")));
  return info.Env().Undefined();
}

}  // namespace

void register_inference_chain(Napi::Env env, Napi::Object exports) {
  exports.Set("inferenceChain", Napi::Function::New<inference_chain>(env, "inferenceChain"));
}

}  // namespace kg
