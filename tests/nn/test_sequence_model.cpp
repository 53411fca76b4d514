// nn::SequenceClassifier (DESIGN §5 "S4 block", §6 check 2): the parallel (convolution) forward
// and the recurrent forward give the same logits for every block variant (layer / batch norm,
// pre / post norm, mean / last pooling, linear / embedding encoder, padded batches), padding
// never reaches the logits, and bad inputs are rejected with clear messages.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "ssm/autograd/node.h"
#include "ssm/core/rng.h"
#include "ssm/nn/sequence_model.h"
#include "ssm/ops/elementwise.h"
#include "support/perturb.h"
#include "support/testing.h"

using namespace ssm;
using namespace ssm::nn;
using ssm::testing::rel_error;

namespace {

train::ModelConfig base_config() {
  train::ModelConfig c;
  c.d_input = 1;
  c.d_model = 16;
  c.d_state = 16;
  c.n_layers = 2;
  c.n_classes = 5;
  c.dropout = 0.2;  // must be inactive in eval mode (the recurrent path has no dropout)
  return c;
}

// Token ids (B, L) int64 uniform in [low, high).
Tensor random_tokens(int64_t B, int64_t L, int64_t low, int64_t high, uint64_t seed) {
  Generator g(seed);
  std::vector<int64_t> ids(static_cast<size_t>(B * L));
  for (auto& id : ids) id = low + static_cast<int64_t>(g.below(static_cast<uint64_t>(high - low)));
  return Tensor::from_data(ids, {B, L});
}

Tensor lengths_tensor(const std::vector<int64_t>& lengths) {
  return Tensor::from_data(lengths, {static_cast<int64_t>(lengths.size())});
}

std::string describe(const train::ModelConfig& c) {
  return c.encoder + " norm=" + c.norm + (c.prenorm ? " prenorm" : " postnorm") +
         " pooling=" + c.pooling;
}

}  // namespace

// Float32 bound for conv vs recurrent: both paths see the same float32 parameters; they differ in
// how each SSM output is accumulated. The conv path sums L = 784 products through a float32 FFT
// of length 2L (error ~ ε·log₂(2L) ≈ 6e-8·11 ≈ 7e-7 relative to the output scale, not ε·L: the
// FFT's error grows with the log of its length), the recurrent path accumulates the state in
// float64 and rounds once. LayerNorm/GLU/residual in two blocks pass that on at O(1) gain:
// measured ≤ 7e-7 on the logits. 1e-5 leaves >10× room and is still far below what a real
// mismatch gives (a wrong mask, a missing norm, dropout applied in eval: errors ≥ 1e-2).
TEST(SequenceClassifier, ConvAndRecurrentGiveTheSameLogits) {
  double worst = 0;
  uint64_t seed = 10;
  for (const char* norm : {"layer", "batch"})
    for (bool prenorm : {true, false})
      for (const char* pooling : {"mean", "last"}) {
        train::ModelConfig c = base_config();
        c.norm = norm;
        c.prenorm = prenorm;
        c.pooling = pooling;
        SCOPED_TRACE(describe(c));
        SequenceClassifier model(c, ++seed);
        ssm::testing::perturb_parameters_and_norm_statistics(model, ++seed);
        model.eval();
        for (int64_t L : {1, 100, 784}) {
          Tensor x = ssm::testing::random({3, L, 1}, DType::F32, ++seed);
          Tensor conv = model.forward(x), rec = model.forward_recurrent(x);
          ASSERT_EQ(shape_str(conv.shape()), "(3, 5)");
          const double err = rel_error(rec, conv);
          EXPECT_LE(err, 1e-5) << "L=" << L;
          worst = std::max(worst, err);
        }
      }
  std::printf("[ measured ] classifier conv vs recurrent (linear encoder): worst %.2e\n", worst);
}

TEST(SequenceClassifier, EvalModeTurnsDropoutOff) {
  // With dropout 0.2 the training-mode forward differs from the eval one; eval is deterministic.
  train::ModelConfig c = base_config();
  SequenceClassifier model(c, 30);
  ssm::testing::perturb_parameters_and_norm_statistics(model, 31);
  Tensor x = ssm::testing::random({2, 50, 1}, DType::F32, 32);
  model.eval();
  Tensor a = model.forward(x), b = model.forward(x);
  EXPECT_EQ(rel_error(a, b), 0.0);
  model.train();
  EXPECT_GT(rel_error(model.forward(x), a), 1e-3);
}

TEST(SequenceClassifier, EmbeddingEncoderWithPaddedBatches) {
  double worst = 0;
  uint64_t seed = 40;
  for (const char* norm : {"layer", "batch"})
    for (bool prenorm : {true, false}) {
      train::ModelConfig c = base_config();
      c.encoder = "embedding";
      c.d_input = 12;  // vocabulary; id 0 is the padding id
      c.norm = norm;
      c.prenorm = prenorm;
      SCOPED_TRACE(describe(c));
      SequenceClassifier model(c, ++seed);
      ssm::testing::perturb_parameters_and_norm_statistics(model, ++seed);
      model.eval();
      const int64_t L = 300;
      Tensor tokens = random_tokens(3, L, 1, 12, ++seed);
      Tensor lengths = lengths_tensor({L, 137, 1});
      {  // pad like the collate function does: id 0 beyond each length
        NoGradGuard ng;
        for (int64_t b = 0; b < 3; ++b)
          for (int64_t l = static_cast<int64_t>(lengths.at({b})); l < L; ++l) tokens.set({b, l}, 0);
      }
      Tensor conv = model.forward(tokens, lengths), rec = model.forward_recurrent(tokens, lengths);
      const double err = rel_error(rec, conv);
      EXPECT_LE(err, 1e-5);
      worst = std::max(worst, err);
      // Masked mean pooling is the plain mean over each example's own prefix.
      for (int64_t b = 0; b < 3; ++b) {
        const int64_t len = static_cast<int64_t>(lengths.at({b}));
        Tensor alone = model.forward(tokens.narrow(0, b, 1).narrow(1, 0, len));
        EXPECT_LE(rel_error(alone, conv.narrow(0, b, 1)), 1e-5) << "example " << b;
      }
    }
  std::printf("[ measured ] classifier conv vs recurrent (embedding, padded): worst %.2e\n", worst);
}

TEST(SequenceClassifier, PaddingDoesNotChangeTheLogits) {
  // Garbage beyond each length, and extra garbage columns appended: same logits in both modes.
  uint64_t seed = 60;
  for (const char* encoder : {"embedding", "linear"})
    for (const char* norm : {"layer", "batch"}) {
      train::ModelConfig c = base_config();
      c.encoder = encoder;
      c.d_input = std::string(encoder) == "embedding" ? 12 : 1;
      c.norm = norm;
      SCOPED_TRACE(describe(c));
      SequenceClassifier model(c, ++seed);
      ssm::testing::perturb_parameters_and_norm_statistics(model, ++seed);
      model.eval();
      const int64_t L = 120, extra = 37;
      const std::vector<int64_t> lens{L, 80, 3};
      Tensor lengths = lengths_tensor(lens);
      Tensor clean, dirty;
      if (c.encoder == "embedding") {
        clean = random_tokens(3, L, 1, 12, ++seed);
        dirty = random_tokens(3, L + extra, 1, 12, ++seed);
      } else {
        clean = ssm::testing::random({3, L, 1}, DType::F32, ++seed);
        dirty = mul_scalar(ssm::testing::random({3, L + extra, 1}, DType::F32, ++seed), 50.0);
      }
      {
        NoGradGuard ng;
        for (int64_t b = 0; b < 3; ++b)
          for (int64_t l = 0; l < lens[b]; ++l)
            dirty.narrow(0, b, 1).narrow(1, l, 1).copy_(clean.narrow(0, b, 1).narrow(1, l, 1));
      }
      // The clean batch is padded with id 0 / value 0, the dirty one with garbage.
      {
        NoGradGuard ng;
        for (int64_t b = 0; b < 3; ++b)
          for (int64_t l = lens[b]; l < L; ++l) clean.narrow(0, b, 1).narrow(1, l, 1).fill_(0.0);
      }
      Tensor ref = model.forward(clean, lengths);
      EXPECT_LE(rel_error(model.forward(dirty, lengths), ref), 1e-5);
      EXPECT_LE(rel_error(model.forward_recurrent(dirty, lengths),
                          model.forward_recurrent(clean, lengths)),
                1e-6);
      // Without the lengths the garbage is read: the check above could fail.
      EXPECT_GT(rel_error(model.forward(dirty), ref), 1e-3);
    }
}

TEST(SequenceClassifier, BidirectionalModel) {
  train::ModelConfig c = base_config();
  c.bidirectional = true;
  SequenceClassifier model(c, 70);
  ssm::testing::perturb_parameters_and_norm_statistics(model, 71);
  model.eval();
  Tensor x = ssm::testing::random({2, 40, 1}, DType::F32, 72);
  Tensor y = model.forward(x);
  EXPECT_EQ(shape_str(y.shape()), "(2, 5)");
  EXPECT_SSM_ERROR(model.forward_recurrent(x), "bidirectional", "step");
  // Its SSM reads future positions: with lengths, padding is masked at every SSM input, so a
  // padded example's logits equal those of the same example run alone without padding.
  Tensor lengths = lengths_tensor({40, 25});
  Tensor padded = model.forward(x, lengths);
  Tensor alone = model.forward(x.narrow(0, 1, 1).narrow(1, 0, 25).contiguous());
  EXPECT_LT(rel_error(padded.narrow(0, 1, 1).contiguous(), alone), 1e-5);
  Tensor first = model.forward(x.narrow(0, 0, 1).contiguous());
  EXPECT_LT(rel_error(padded.narrow(0, 0, 1).contiguous(), first), 1e-5);
}

TEST(SequenceClassifier, RecurrentModeNeedsEvalModeForBatchNormAndDropout) {
  Tensor x = ssm::testing::random({2, 20, 1}, DType::F32, 90);
  train::ModelConfig c = base_config();
  c.norm = "batch";
  c.dropout = 0.0;
  SequenceClassifier bn(c, 91);
  auto stats = bn.state_dict().at("blocks.0.norm.running_mean").to_vector();
  EXPECT_SSM_ERROR(bn.forward_recurrent(x), "forward_recurrent", "training mode", "eval()");
  EXPECT_EQ(bn.state_dict().at("blocks.0.norm.running_mean").to_vector(), stats);
  c.norm = "layer";
  c.dropout = 0.1;
  SequenceClassifier dropped(c, 92);
  EXPECT_SSM_ERROR(dropped.forward_recurrent(x), "forward_recurrent", "training mode", "0.1");
  // Layer norm without dropout computes the same thing in both modes: allowed while training.
  c.dropout = 0.0;
  SequenceClassifier plain(c, 93);
  ssm::testing::perturb_parameters_and_norm_statistics(plain, 94);
  EXPECT_LE(rel_error(plain.forward_recurrent(x), plain.forward(x)), 1e-5);
}

TEST(SequenceClassifier, RejectsBadInputs) {
  train::ModelConfig c = base_config();
  c.d_input = 3;
  c.max_length = 64;
  SequenceClassifier model(c, 80);
  model.eval();
  Tensor x = ssm::testing::random({2, 10, 3}, DType::F32, 81);
  for (bool recurrent : {false, true}) {
    SCOPED_TRACE(recurrent ? "forward_recurrent" : "forward");
    auto run = [&](const Tensor& in, const Tensor& lengths = Tensor()) {
      return recurrent ? model.forward_recurrent(in, lengths) : model.forward(in, lengths);
    };
    EXPECT_SSM_ERROR(run(ssm::testing::random({2, 10}, DType::F32)), "SequenceClassifier",
                     "(B, L, 3)", "(2, 10)");
    EXPECT_SSM_ERROR(run(ssm::testing::random({2, 10, 4}, DType::F32)), "SequenceClassifier",
                     "(B, L, 3)", "(2, 10, 4)");
    EXPECT_SSM_ERROR(run(ssm::testing::random({20}, DType::F32)), "SequenceClassifier", "(B, L, 3)",
                     "(20)");
    EXPECT_SSM_ERROR(run(ssm::testing::random({2, 65, 3}, DType::F32)), "SequenceClassifier", "65",
                     "max_length 64");
    EXPECT_SSM_ERROR(run(x, lengths_tensor({10, 11})), "SequenceClassifier", "length 11",
                     "[1, 10]");
    EXPECT_SSM_ERROR(run(x, lengths_tensor({0, 5})), "SequenceClassifier", "length 0");
    EXPECT_SSM_ERROR(run(x, lengths_tensor({5})), "SequenceClassifier", "'lengths'", "(2)", "(1)");
    EXPECT_SSM_ERROR(run(x, lengths_tensor({5, 5, 5})), "SequenceClassifier", "'lengths'", "(2)",
                     "(3)");
  }
  train::ModelConfig last = c;
  last.pooling = "last";
  SequenceClassifier last_model(last, 82);
  last_model.eval();
  EXPECT_SSM_ERROR(last_model.forward(x, lengths_tensor({10, 4})), "SequenceClassifier", "last",
                   "padded");
  EXPECT_SSM_ERROR(last_model.forward_recurrent(x, lengths_tensor({10, 4})), "SequenceClassifier",
                   "last", "padded");

  train::ModelConfig emb = base_config();
  emb.encoder = "embedding";
  emb.d_input = 12;
  SequenceClassifier emb_model(emb, 83);
  EXPECT_SSM_ERROR(emb_model.forward(ssm::testing::random({2, 10, 1}, DType::F32)),
                   "SequenceClassifier", "(B, L)", "(2, 10, 1)");
  EXPECT_SSM_ERROR(emb_model.forward_recurrent(ssm::testing::random({2, 10, 1}, DType::F32)),
                   "SequenceClassifier", "(B, L)", "(2, 10, 1)");

  train::ModelConfig odd = base_config();
  odd.d_state = 7;
  EXPECT_SSM_ERROR(SequenceClassifier(odd, 84), "S4D", "d_state", "even", "7");
  EXPECT_SSM_ERROR(SequenceClassifier(base_config(), 85, DType::F64), "SequenceClassifier",
                   "float32");
}

TEST(SequenceClassifier, S4AndS5LayersAgreeInConvAndRecurrentModes) {
  for (const char* layer : {"s4", "s5"}) {
    train::ModelConfig c = base_config();
    c.layer = layer;
    c.max_length = 60;  // the S4 kernel length
    SequenceClassifier model(c, 101);
    ssm::testing::perturb_parameters_and_norm_statistics(model, 102);
    model.eval();
    Tensor x = ssm::testing::random({2, 60, 1}, DType::F32, 103);
    EXPECT_LT(rel_error(model.forward_recurrent(x), model.forward(x)), 1e-5) << layer;
    // A bidirectional model with padded batches: each example equals itself run alone.
    c.bidirectional = true;
    SequenceClassifier bi(c, 104);
    ssm::testing::perturb_parameters_and_norm_statistics(bi, 105);
    bi.eval();
    Tensor lengths = lengths_tensor({60, 33});
    Tensor padded = bi.forward(x, lengths);
    Tensor alone = bi.forward(x.narrow(0, 1, 1).narrow(1, 0, 33).contiguous());
    EXPECT_LT(rel_error(padded.narrow(0, 1, 1).contiguous(), alone), 1e-5) << layer;
  }
}
