// Binding of the device-side batch-norm statistics check (flag_nonfinite_stats in ops.inc).
#include "addon.h"
#include "args.h"
#include "kg/ops.h"

namespace kg {
namespace {

// flagNonFiniteStats(c, mean, invstd, variance | null, layer, flag)
Napi::Value flag_nonfinite_stats(const Napi::CallbackInfo& info) {
  Args a(info, "flagNonFiniteStats", 6);
  const int64_t c = a.i64(0, "c");
  Storage &mean = a.storage(1, "mean"), &invstd = a.storage(2, "invstd");
  Storage* var = a.optional_storage(3, "variance");
  const float layer = a.f32(4, "layer");
  Storage& flag = a.storage(5, "flag");
  a.expect_numel(mean, c, "mean");
  a.expect_numel(invstd, c, "invstd");
  if (var) a.expect_numel(*var, c, "variance");
  a.expect_numel(flag, 3, "flag");
  const Device d = a.same_device({&mean, &invstd, var, &flag});
  KG_RUN(a, d, flag_nonfinite_stats(c, mean.data("mean"), invstd.data("invstd"), var ? var->data("variance") : nullptr,
                                    layer, flag.data("flag")));
  return info.Env().Undefined();
}

}  // namespace

void register_flags(Napi::Env env, Napi::Object exports) {
  exports.Set("flagNonFiniteStats", Napi::Function::New<flag_nonfinite_stats>(env, "flagNonFiniteStats"));
}

}  // namespace kg
