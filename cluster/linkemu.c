// linkemu: a userspace link emulator for the virtual cluster (cluster/vcluster.sh),
// for kernels without sch_netem. It does what `tc qdisc add dev X root netem
// delay D rate R limit L` on every host's egress would do, on a second subnet:
//
//   linkemu --name NAME --hosts K [--subnet 10.78.0] [--delay-us D]
//           [--rate-mbit R] [--mtu 9000] [--limit 1000] [--spin-us 30] [--dev emu0]
//
// For host I (1..K) it creates a TUN device (IFF_TUN | IFF_NO_PI) named --dev
// inside namespace NAME-hI, gives it SUBNET.I/24 and the MTU, and forwards the
// IPv4 packets the hosts send on it by destination address. Each sender has
// its own egress link, a FIFO of at most --limit packets (drop-tail): a packet
// read at time t starts at max(t, when the sender's link is free), occupies
// it len*8/R, and is delivered (written to the receiver's TUN) D after it has
// left the link. R = 0: no rate cap; D = 0: no delay (the emulator's own cost
// remains, which is the base latency of this link).
//
// One thread: ppoll with a nanosecond timeout up to --spin-us before the next
// delivery, then a short spin (timer wake-ups are late by tens of microseconds
// on a VM). It runs SCHED_FIFO when allowed (a NIC does not wait for the CPU
// behind busy ranks). SIGTERM/SIGINT: prints its counters to stderr and exits
// 0; the TUN devices disappear with it. Prints "linkemu: up" once the links are.
//
// MTU 9000 (jumbo frames, as on cluster networks): each packet costs the
// emulator a read and a write (a few microseconds), so at 1500 bytes
// (1.2 us a packet at 10 Gbit/s) the emulator, not R, would set the rate.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_HOSTS 64

typedef struct {
  uint64_t arrive, deliver;  // ns, CLOCK_MONOTONIC
  int to, len;
} Meta;

typedef struct {
  int fd;
  unsigned char* buf;  // limit slots of mtu bytes
  Meta* meta;
  unsigned head, count;
  uint64_t link_free;  // ns: when the sender's link has sent its last packet
  uint64_t pkts, bytes, drops, other;
} Host;

static volatile sig_atomic_t stop;
static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

_Noreturn static void die(const char* what, const char* detail) {
  fprintf(stderr, "linkemu: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  exit(1);
}

static void ifreq_addr(struct ifreq* r, uint32_t addr) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = addr};
  memcpy(&r->ifr_addr, &sa, sizeof sa);
}

// Creates the TUN device `dev` inside namespace `ns`, addressed and up; returns its fd.
static int make_tun(const char* ns, const char* dev, uint32_t addr, int mtu) {
  char path[256];
  snprintf(path, sizeof path, "/run/netns/%s", ns);
  const int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  const int nsfd = open(path, O_RDONLY | O_CLOEXEC);
  if (home < 0) die("cannot open /proc/self/ns/net", strerror(errno));
  if (nsfd < 0) die(path, "no such network namespace (is the virtual cluster up?)");
  if (setns(nsfd, CLONE_NEWNET) != 0) die("setns (needs root)", strerror(errno));
  const int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    die("cannot open /dev/net/tun (the TUN driver; in a container, pass the device in)",
        strerror(errno));
  struct ifreq r = {0};
  snprintf(r.ifr_name, IFNAMSIZ, "%s", dev);
  r.ifr_flags = IFF_TUN | IFF_NO_PI;
  if (ioctl(fd, TUNSETIFF, &r) != 0) die(ns, strerror(errno));
  // No IPv6 on it (router solicitations would only be counted as "other").
  snprintf(path, sizeof path, "/proc/sys/net/ipv6/conf/%s/disable_ipv6", dev);
  FILE* f = fopen(path, "w");
  if (f) fputs("1", f), fclose(f);
  const int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  r.ifr_mtu = mtu;
  if (ioctl(s, SIOCSIFMTU, &r) != 0) die("cannot set the MTU", strerror(errno));
  ifreq_addr(&r, addr);
  if (ioctl(s, SIOCSIFADDR, &r) != 0) die("cannot set the address", strerror(errno));
  ifreq_addr(&r, htonl(0xffffff00u));
  if (ioctl(s, SIOCSIFNETMASK, &r) != 0) die("cannot set the netmask", strerror(errno));
  if (ioctl(s, SIOCGIFFLAGS, &r) != 0) die("SIOCGIFFLAGS", strerror(errno));
  r.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(s, SIOCSIFFLAGS, &r) != 0) die("cannot bring the device up", strerror(errno));
  close(s);
  if (setns(home, CLONE_NEWNET) != 0) die("setns back", strerror(errno));
  close(nsfd);
  close(home);
  return fd;
}

static long arg_num(const char* opt, const char* v, long lo, long hi) {
  char* end;
  const long x = v ? strtol(v, &end, 10) : 0;
  if (!v || *end || x < lo || x > hi) {
    fprintf(stderr, "linkemu: %s needs a number in [%ld, %ld]\n", opt, lo, hi);
    exit(2);
  }
  return x;
}

int main(int argc, char** argv) {
  const char *name = NULL, *subnet = "10.78.0", *dev = "emu0";
  int k = 0, mtu = 9000, limit = 1000;
  long delay_us = 0, rate_mbit = 0, spin_us = 30;
  for (int i = 1; i < argc; i += 2) {
    const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(o, "--name") && v)
      name = v;
    else if (!strcmp(o, "--subnet") && v)
      subnet = v;
    else if (!strcmp(o, "--dev") && v)
      dev = v;
    else if (!strcmp(o, "--hosts"))
      k = (int)arg_num(o, v, 2, MAX_HOSTS);
    else if (!strcmp(o, "--delay-us"))
      delay_us = arg_num(o, v, 0, 10000000);
    else if (!strcmp(o, "--rate-mbit"))
      rate_mbit = arg_num(o, v, 0, 10000000);
    else if (!strcmp(o, "--mtu"))
      mtu = (int)arg_num(o, v, 576, 65535);
    else if (!strcmp(o, "--limit"))
      limit = (int)arg_num(o, v, 1, 1000000);
    else if (!strcmp(o, "--spin-us"))
      spin_us = arg_num(o, v, 0, 1000000);
    else {
      fprintf(stderr,
              "usage: linkemu --name NAME --hosts K [--subnet 10.78.0] [--delay-us D] "
              "[--rate-mbit R (0: no cap)] [--mtu 9000] [--limit PACKETS] [--spin-us 30] "
              "[--dev emu0]\n");
      return 2;
    }
  }
  struct in_addr net;
  char probe[64];
  snprintf(probe, sizeof probe, "%s.0", subnet);
  if (!name || k < 2) die("--name and --hosts are required", NULL);
  if (inet_pton(AF_INET, probe, &net) != 1)
    die("--subnet must be three octets, e.g. 10.78.0", subnet);
  if (strlen(dev) >= IFNAMSIZ) die("--dev is too long", dev);
  const uint32_t net24 = ntohl(net.s_addr) & 0xffffff00u;
  const uint64_t delay = (uint64_t)delay_us * 1000, spin = (uint64_t)spin_us * 1000;
  const double ns_per_byte = rate_mbit ? 8e3 / (double)rate_mbit : 0.0;

  sigset_t block, open_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  sigprocmask(SIG_BLOCK, &block, &open_mask);  // delivered only inside ppoll: no lost wake-up
  sigdelset(&open_mask, SIGTERM);
  sigdelset(&open_mask, SIGINT);
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  Host h[MAX_HOSTS + 1] = {{0}};
  struct pollfd pfd[MAX_HOSTS];
  for (int i = 1; i <= k; ++i) {
    char ns[128];
    snprintf(ns, sizeof ns, "%s-h%d", name, i);
    h[i].fd = make_tun(ns, dev, htonl(net24 | (uint32_t)i), mtu);
    h[i].buf = malloc((size_t)limit * (size_t)mtu);
    h[i].meta = malloc((size_t)limit * sizeof(Meta));
    if (!h[i].buf || !h[i].meta) die("out of memory for the queues (lower --limit)", NULL);
    pfd[i - 1] = (struct pollfd){.fd = h[i].fd, .events = POLLIN};
  }
  prctl(PR_SET_TIMERSLACK, 1UL);  // ppoll wakes when asked, not up to 50 us later
  struct sched_param sp = {.sched_priority = 10};
  const int rt = sched_setscheduler(0, SCHED_FIFO, &sp) == 0;
  char rate[64] = "unlimited";
  if (rate_mbit) snprintf(rate, sizeof rate, "%ld Mbit/s", rate_mbit);
  fprintf(stderr,
          "linkemu: up: %d hosts %s.1-%d on %s (MTU %d), delay %ld us, rate %s, limit %d packets a "
          "sender%s\n",
          k, subnet, k, dev, mtu, delay_us, rate, limit, rt ? ", SCHED_FIFO" : "");

  uint64_t delivered = 0, sum_latency = 0, sum_late = 0, max_late = 0;
  unsigned char scratch[65536];
  while (!stop) {
    // Deliver what is due.
    uint64_t now = now_ns(), next = UINT64_MAX;
    for (int i = 1; i <= k; ++i) {
      Host* s = &h[i];
      while (s->count && s->meta[s->head].deliver <= now) {
        const Meta* m = &s->meta[s->head];
        if (write(h[m->to].fd, s->buf + (size_t)s->head * (size_t)mtu, (size_t)m->len) != m->len) {
          s->drops++;  // the receiver's device is gone or down
        } else {
          now = now_ns();
          delivered++;
          sum_latency += now - m->arrive;
          sum_late += now - m->deliver;
          if (now - m->deliver > max_late) max_late = now - m->deliver;
        }
        s->head = (s->head + 1) % (unsigned)limit;
        s->count--;
      }
      if (s->count && s->meta[s->head].deliver < next) next = s->meta[s->head].deliver;
    }
    // Sleep until shortly before the next delivery (or a packet arrives), spin the rest.
    struct timespec ts = {0, 0}, *timeout = NULL;
    if (next != UINT64_MAX) {
      const uint64_t wait = next > now + spin ? next - now - spin : 0;
      ts.tv_sec = (time_t)(wait / 1000000000u);
      ts.tv_nsec = (long)(wait % 1000000000u);
      timeout = &ts;
    }
    if (ppoll(pfd, (nfds_t)k, timeout, &open_mask) <= 0) continue;
    for (int i = 1; i <= k; ++i) {
      if (!(pfd[i - 1].revents & POLLIN)) continue;
      Host* s = &h[i];
      for (int burst = 0; burst < 64; ++burst) {
        const unsigned tail = (s->head + s->count) % (unsigned)limit;
        const int full = s->count == (unsigned)limit;
        unsigned char* p = full ? scratch : s->buf + (size_t)tail * (size_t)mtu;
        const ssize_t n = read(s->fd, p, full ? sizeof scratch : (size_t)mtu);
        if (n < 0) break;  // EAGAIN: drained
        const uint64_t t = now_ns();
        const uint32_t dst =
            n >= 20 && (p[0] >> 4) == 4
                ? (uint32_t)p[16] << 24 | (uint32_t)p[17] << 16 | (uint32_t)p[18] << 8 | p[19]
                : 0;
        const int to = (int)(dst & 0xff);
        if ((dst & 0xffffff00u) != net24 || to < 1 || to > k || to == i) {
          s->other++;  // not for another host of the subnet (broadcast, IPv6, ...)
          continue;
        }
        s->pkts++;
        s->bytes += (uint64_t)n;
        if (full) {
          s->drops++;
          continue;
        }
        const uint64_t start = t > s->link_free ? t : s->link_free;
        s->link_free = start + (uint64_t)((double)n * ns_per_byte);
        s->meta[tail] =
            (Meta){.arrive = t, .deliver = s->link_free + delay, .to = to, .len = (int)n};
        s->count++;
      }
    }
  }

  uint64_t pkts = 0, bytes = 0, drops = 0, other = 0;
  for (int i = 1; i <= k; ++i) {
    fprintf(stderr,
            "linkemu: h%d sent %llu packets, %llu bytes, %llu dropped, %llu not for the subnet\n",
            i, (unsigned long long)h[i].pkts, (unsigned long long)h[i].bytes,
            (unsigned long long)h[i].drops, (unsigned long long)h[i].other);
    pkts += h[i].pkts, bytes += h[i].bytes, drops += h[i].drops, other += h[i].other;
    close(h[i].fd);
    free(h[i].buf);
    free(h[i].meta);
  }
  const double d = delivered ? (double)delivered : 1.0;
  fprintf(stderr,
          "linkemu: total %llu packets, %llu bytes, %llu dropped, %llu not for the subnet; "
          "%llu delivered: mean %.1f us in the emulator (queue + rate + delay), later than "
          "scheduled by "
          "%.1f us on average (max %.1f us)\n",
          (unsigned long long)pkts, (unsigned long long)bytes, (unsigned long long)drops,
          (unsigned long long)other, (unsigned long long)delivered, (double)sum_latency / d / 1e3,
          (double)sum_late / d / 1e3, (double)max_late / 1e3);
  return 0;
}
