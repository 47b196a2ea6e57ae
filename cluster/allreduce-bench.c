// Time of MPI_Allreduce (float sum, in place, as dpcnn's gradient reduction)
// for a few message sizes: the alpha/beta calibration of cluster/scaling.md.
// Built and run by cluster/bench-links.sh (mpicc; not part of the product).
// Prints one line a size: "allreduce ranks=P bytes=N median_us=T".
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const int iters = argc > 1 ? atoi(argv[1]) : 100;
  // 4 B (latency), 64 KB (one gradient bucket), the seed model's 373,288 B
  // gradient (93,322 floats), 1.5 MB.
  const long sizes[] = {1, 16384, 93322, 393216};
  float* buf = calloc(393216, sizeof(float));
  double* t = malloc(sizeof(double) * (size_t)iters);
  for (int s = 0; s < 4; ++s) {
    const int n = (int)sizes[s];
    for (int i = 0; i < 10; ++i) MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    for (int i = 0; i < iters; ++i) {
      MPI_Barrier(MPI_COMM_WORLD);
      const double t0 = MPI_Wtime();
      MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      double dt = MPI_Wtime() - t0;
      MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);  // the slowest rank
      t[i] = dt;
    }
    qsort(t, (size_t)iters, sizeof(double), cmp);
    if (rank == 0) printf("allreduce ranks=%d bytes=%ld median_us=%.1f\n", size, sizes[s] * 4, t[iters / 2] * 1e6);
  }
  free(buf);
  free(t);
  MPI_Finalize();
  return 0;
}
