// The concrete layers. Only layers/*.cc and tests include this header; the rest
// of the project builds layers through make_layer(). See layer.h for the
// contracts (layouts, buffers, threads).
#pragma once

#include <vector>

#include "layers/layer.h"
#include "layers/pool_fast.h"

namespace dpcnn {

// A layer with weights (and optional bias) computed by a forward primitive and
// two backward primitives (data, weights), with an optional ReLU fused as a
// post-op whose backward runs on dst (no pre-activation copy is kept). Conv2D
// and Dense only differ in how they describe their primitives.
class WeightedLayer : public Layer {
 public:
  size_t param_count() const override;
  void init_params(float* params, float* state, Rng& rng) const override;
  void bind(float* params, float* grads, float* state) override;
  void forward(const memory& src, const StepInfo& info) override;
  void backward(const memory& diff_dst, bool need_diff_src) override;

 protected:
  struct Descs {                                        // what the three primitive_descs chose
    memory::desc src, weights, dst;                     // forward
    memory::desc bw_src, bw_diff_dst, bw_diff_weights;  // backward weights
    memory::desc bd_diff_dst, bd_weights, bd_diff_src;  // backward data
  };
  WeightedLayer(const LayerSpec& spec, const Context& ctx, const memory::desc& src_md,
                bool training, const LayerTypes& types);
  // Called by the subclass constructor once its primitives exist. `user_w_tag`
  // is the plain layout of the weights in the flat parameter buffer.
  void setup(dnnl::primitive fwd, dnnl::primitive bwd_w, dnnl::primitive bwd_d, const Descs& d,
             memory::format_tag user_w_tag);
  // The same from typed primitive descriptors: inference (forward only) and
  // training (forward, backward weights, backward data).
  template <class Fwd>
  void setup_from(const typename Fwd::primitive_desc& f, memory::format_tag user_w_tag) {
    Descs d;
    d.src = f.src_desc();
    d.weights = f.weights_desc();
    d.dst = f.dst_desc();
    setup(Fwd(f), {}, {}, d, user_w_tag);
  }
  template <class Fwd, class BwdW, class BwdD>
  void setup_from(const typename Fwd::primitive_desc& f, const typename BwdW::primitive_desc& bw,
                  const typename BwdD::primitive_desc& bd, memory::format_tag user_w_tag) {
    const Descs d{f.src_desc(),       f.weights_desc(),   f.dst_desc(),
                  bw.src_desc(),      bw.diff_dst_desc(), bw.diff_weights_desc(),
                  bd.diff_dst_desc(), bd.weights_desc(),  bd.diff_src_desc()};
    setup(Fwd(f), BwdW(bw), BwdD(bd), d, user_w_tag);
  }
  static dnnl::primitive_attr relu_attr(bool relu);

  bool relu_, bias_;
  LayerTypes types_;
  memory::dims wdims_;
  int fan_in_ = 0, fan_out_ = 0;

 private:
  memory::format_tag user_w_tag_ = tag::undef;
  Descs d_;
  dnnl::primitive fwd_, bwd_w_, bwd_d_;
  dnnl::eltwise_backward relu_bwd_;
  Converter src_in_, w_in_, w_bd_, dw_out_, ddst_w_, ddst_d_, src_w_, dsrc_out_;
  Converter w_frozen_;         // inference with frozen parameters: a private copy
  uint64_t w_frozen_gen_ = 0;  // the Context::frozen_params it was made for
  memory user_w_, user_b_, user_dw_, user_db_, fwd_w_, dw_int_, diff_pre_, diff_src_raw_;
};

class Conv2D : public WeightedLayer {
 public:
  Conv2D(const LayerSpec& spec, const Context& ctx, const memory::desc& src_md, bool training,
         const LayerTypes& types = {});
  std::string kind() const override { return "conv2d"; }
};

// Dense (inner product) on a 2-D (N, features) input; dst is plain (N, units).
class Dense : public WeightedLayer {
 public:
  Dense(const LayerSpec& spec, const Context& ctx, const memory::desc& src_md, bool training,
        const LayerTypes& types = {});
  std::string kind() const override { return "dense"; }
};

class MaxPool2D : public Layer {
 public:
  MaxPool2D(const LayerSpec& spec, const Context& ctx, const memory::desc& src_md, bool training);
  std::string kind() const override { return "maxpool2d"; }
  bool fast() const { return fast_; }  // training through pool_fast, not oneDNN
  void forward(const memory& src, const StepInfo& info) override;
  void backward(const memory& diff_dst, bool need_diff_src) override;

 private:
  dnnl::pooling_forward::primitive_desc fwd_pd_;
  dnnl::pooling_forward fwd_;
  dnnl::pooling_backward bwd_;
  Converter ddst_in_, dsrc_out_;
  memory ws_;
  // Training through pool_fast (argmax one byte an output) instead of oneDNN.
  bool fast_ = false;
  PoolShape shape_{};
  std::vector<uint8_t> arg_;
};

class ReLU : public Layer {
 public:
  ReLU(const Context& ctx, const memory::desc& src_md, bool training);
  std::string kind() const override { return "relu"; }
  void forward(const memory& src, const StepInfo& info) override;
  void backward(const memory& diff_dst, bool need_diff_src) override;

 private:
  dnnl::eltwise_forward fwd_;
  dnnl::eltwise_backward bwd_;
};

// Flatten to (N, C*H*W) in plain C,H,W order (PyTorch's order, not Keras's
// H,W,C): reorders a blocked layout to plain at this edge of the network.
class Flatten : public Layer {
 public:
  Flatten(const Context& ctx, const memory::desc& src_md, bool training);
  std::string kind() const override { return "flatten"; }
  void forward(const memory& src, const StepInfo& info) override;
  void backward(const memory& diff_dst, bool need_diff_src) override;

 private:
  bool identity_;
  memory::desc plain4d_;
  memory dst_plain4d_;  // dst's bytes seen as plain N,C,H,W (made once, not per step)
  Converter to_plain_, from_plain_;
};

// Inverted dropout (Keras): keep with probability 1-rate, scale kept values by
// 1/(1-rate) in training; identity in inference. The mask of each sample is drawn
// from (seed, step, global sample index), so it is the same for any rank count.
class Dropout : public Layer {
 public:
  Dropout(const LayerSpec& spec, const Context& ctx, const memory::desc& src_md, bool training);
  std::string kind() const override { return "dropout"; }
  void forward(const memory& src, const StepInfo& info) override;
  void backward(const memory& diff_dst, bool need_diff_src) override;

 private:
  float rate_;
  std::vector<uint8_t> mask_;
};

// BatchNorm over channels with learned gamma/beta. Training normalises with the
// batch statistics and updates running statistics with Keras's momentum;
// inference uses the running statistics.
//
// Synchronized (spec.sync, the default) under several ranks (a
// BatchStatsReducer in the Context): the statistics are those of the GLOBAL
// batch, forward and backward, as PyTorch's SyncBatchNorm, so any rank count
// trains the same model. One reduction a layer forward (count, sum, sum of
// squares per channel) and one backward (sum of diff_dst and of diff_dst*xhat
// per channel). Without a reducer (one rank) or with sync false, each rank's
// slice statistics are used, through oneDNN's own primitives only.
class BatchNorm : public Layer {
 public:
  BatchNorm(const LayerSpec& spec, const Context& ctx, const memory::desc& src_md, bool training);
  std::string kind() const override { return "batchnorm"; }
  size_t param_count() const override { return 2 * channels_; }
  size_t state_count() const override { return 2 * channels_; }
  void init_params(float* params, float* state, Rng& rng) const override;
  void bind(float* params, float* grads, float* state) override;
  void forward(const memory& src, const StepInfo& info) override;
  void backward(const memory& diff_dst, bool need_diff_src) override;
  void forward_empty(const StepInfo& info) override;
  void backward_empty(bool need_diff_src) override;

 private:
  bool synced() const { return training_ && sync_ && ctx_.stats_reducer != nullptr; }
  void build_sync_primitives();
  void run_forward(const dnnl::batch_normalization_forward& prim, const memory& src,
                   const memory& mean, const memory& var);
  // Sums this rank's (count, mean, variance) with every other rank's and
  // leaves the global mean and biased variance in mean_/var_; returns the
  // global count per channel.
  double reduce_statistics(double local_count);
  void update_running_statistics(double count);

  int64_t channels_;
  float momentum_, epsilon_;
  bool sync_;
  int64_t count_per_channel_;
  dnnl::batch_normalization_forward::primitive_desc fwd_pd_;
  dnnl::batch_normalization_forward fwd_;
  dnnl::batch_normalization_backward bwd_;
  memory scale_, shift_, dscale_, dshift_, mean_, var_, run_mean_, run_var_;
  // Synchronized path (built on first use): normalise with given statistics;
  // backward with given statistics (diff_src = gamma/sigma * diff_dst, plus
  // this slice's diff_scale/diff_shift); then diff_src += the global terms,
  // computed by fwd_global_ with scale/shift corr_a_/corr_b_ and added.
  bool sync_built_ = false;
  double global_count_ = 0;
  dnnl::batch_normalization_forward fwd_global_;
  dnnl::batch_normalization_backward bwd_global_;
  dnnl::binary correct_;
  memory corr_a_, corr_b_;
  std::vector<double> sums_;
};

}  // namespace dpcnn
