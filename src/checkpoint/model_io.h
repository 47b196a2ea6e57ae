// Moving a Model (and its optimizer) in and out of CheckpointData. Checks that
// a checkpoint belongs to this model (same spec, parameter names and shapes)
// before touching any buffer. Called by the trainer (rank 0 saves; every rank
// loads) and by dpcnn-predict; single-threaded.
#pragma once

#include <string>

#include "checkpoint/checkpoint.h"
#include "config/config.h"
#include "model/model.h"
#include "optim/optimizer.h"

namespace dpcnn {

// A canonical, order-stable text of the model section (input, classes, every
// layer with all its fields): equal strings <=> the same network.
std::string model_spec_text(const ModelConfig& m);

// Fills c.model_spec, c.params and c.state from the model, and (if opt is not
// null) c.optimizer_type / iterations / slots.
void save_model(const Model& model, const Optimizer* opt, const std::string& optimizer_type,
                CheckpointData* c);

// Copies c's params and state into the model (and optimizer slots and
// iterations if opt is not null). Throws dpcnn::Error naming `source` when the
// checkpoint is of another model or optimizer ("checkpoint 'x' is of another
// model: expected ..., found ..."); everything is checked before any buffer is
// written, so a refused checkpoint leaves model and optimizer untouched.
// `optimizer_type` (if not empty) must equal the checkpoint's.
void load_model(const CheckpointData& c, const std::string& source, Model* model, Optimizer* opt,
                const std::string& optimizer_type = {});

}  // namespace dpcnn
