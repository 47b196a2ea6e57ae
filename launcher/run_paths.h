// Where a launch runs and where dpcnn-status looks: the run directories of an
// experiment (`<runs_dir>/<name>/version_<N>/`, src/run/run_dir.h) seen from
// the command line. Pure path logic plus directory reads; it never creates or
// changes a file. Any thread.
#pragma once

#include <string>

namespace dpcnn::launcher {

// What `dpcnn-launch --resume auto|PATH` continues.
struct ResumeTarget {
  std::string run_dir;        // the version directory to continue in; "" = a new run
  std::string worker_resume;  // the first attempt's `dpcnn-train --resume` ("auto" or a path)
};

// auto: the newest run of the experiment that has a checkpoint (as the
// worker's own --resume auto chooses). PATH: a checkpoint file, `latest`
// pointer or checkpoints directory (continued in the version directory that
// holds it, else in a new run), a run directory, or an experiment directory
// (its newest run with a checkpoint). Throws dpcnn::InputError when there is
// nothing to resume.
ResumeTarget resolve_resume(const std::string& arg, const std::string& experiment_dir);

// dpcnn-status --run DIR: DIR itself when it is a run (version) directory
// (or holds a status.addr or status.json), else the newest run of DIR taken as
// an experiment directory; "" when DIR is neither.
std::string run_to_query(const std::string& dir);

// The run under `runs_root` (runs/<name>/version_<N>, or a pre-versions
// runs/<name>) whose status.addr was written last; "" when none has one.
std::string newest_served_run(const std::string& runs_root);

// The run under `runs_root` whose status.addr names `addr`; "" when none.
std::string served_run_at(const std::string& runs_root, const std::string& addr);

}  // namespace dpcnn::launcher
