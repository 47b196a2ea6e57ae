// The link calibration of cluster/scaling.md: point-to-point and allreduce
// times as dpcnn's gradient reduction sees them. Built and run by
// cluster/bench-links.sh (mpicc; not part of the product). Prints, median of
// ITERS (the slowest rank's time for the collectives):
//   pingpong  ranks=P bytes=N median_us=T   half a round trip rank 0 <-> 1 (alpha + N beta)
//   allreduce ranks=P bytes=N median_us=T   MPI_Allreduce, float sum, in place
//   buckets   ranks=P bytes=N median_us=T   dpcnn's reduction: in-place MPI_Iallreduce
//                                           of 64 KB buckets, all started, then MPI_Waitall
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#define GRAD 93322    // floats: the seed model's gradient (373,288 bytes)
#define BUCKET 16384  // floats: dpcnn's distributed.bucket_kb = 64

static int cmp(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

// One timed repetition of `what` on n floats; returns seconds (the slowest rank's for collectives).
static double once(const char* what, float* buf, int n, int rank, int size) {
  MPI_Request req[(GRAD + BUCKET - 1) / BUCKET];
  MPI_Barrier(MPI_COMM_WORLD);
  const double t0 = MPI_Wtime();
  if (what[0] == 'p') {  // pingpong: half the round trip
    if (rank == 0) {
      MPI_Send(buf, n, MPI_FLOAT, 1, 0, MPI_COMM_WORLD);
      MPI_Recv(buf, n, MPI_FLOAT, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else if (rank == 1) {
      MPI_Recv(buf, n, MPI_FLOAT, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      MPI_Send(buf, n, MPI_FLOAT, 0, 0, MPI_COMM_WORLD);
    }
    return (MPI_Wtime() - t0) / 2;
  }
  if (what[0] == 'a') {
    MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  } else {  // buckets cut from the end of the buffer, as src/comm/mpi_communicator.cc does
    int k = 0;
    for (int end = n; end > 0; end -= BUCKET, ++k) {
      const int begin = end > BUCKET ? end - BUCKET : 0;
      MPI_Iallreduce(MPI_IN_PLACE, buf + begin, end - begin, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                     &req[k]);
    }
    MPI_Waitall(k, req, MPI_STATUSES_IGNORE);
  }
  double dt = MPI_Wtime() - t0;
  MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return dt;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const int iters = argc > 1 ? atoi(argv[1]) : 100;
  float* buf = calloc(GRAD, sizeof(float));
  double* t = malloc(sizeof(double) * (size_t)iters);
  // 4 B (latency), 64 KB (one bucket), the gradient.
  const struct {
    const char* what;
    int n;
  } runs[] = {{"pingpong", 1},  {"pingpong", BUCKET}, {"pingpong", GRAD},
              {"allreduce", 1}, {"allreduce", GRAD},  {"buckets", GRAD}};
  for (size_t r = 0; r < sizeof runs / sizeof runs[0]; ++r) {
    for (int i = 0; i < 10; ++i) once(runs[r].what, buf, runs[r].n, rank, size);
    for (int i = 0; i < iters; ++i) t[i] = once(runs[r].what, buf, runs[r].n, rank, size);
    qsort(t, (size_t)iters, sizeof(double), cmp);
    if (rank == 0)
      printf("%s ranks=%d bytes=%ld median_us=%.1f\n", runs[r].what, size, (long)runs[r].n * 4,
             t[iters / 2] * 1e6);
  }
  free(buf);
  free(t);
  MPI_Finalize();
  return 0;
}
