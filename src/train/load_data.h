// Loading the dataset for a job: every rank reads data.dir itself (a shared or
// replicated filesystem), or with data.broadcast rank 0 reads it and sends it
// to the others (hosts without the files). Collective: every rank calls it.
#pragma once

#include "comm/communicator.h"
#include "config/config.h"
#include "data/dataset.h"

namespace dpcnn {

DataSplit load_job_data(const Config& cfg, Communicator& comm);

}  // namespace dpcnn
