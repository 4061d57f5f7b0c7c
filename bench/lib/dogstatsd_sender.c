// DogStatsD load generator for bench/dogstatsd_ingest: sends TOTAL lines to 127.0.0.1:PORT, LINES
// lines per datagram, paced to RATE lines per second (0: as fast as it can), with sendmmsg so that
// the sender's own syscalls cost as little of the shared cores as possible. Python cannot send
// 500,000 datagrams a second; this can.
//
//   dogstatsd_sender PORT LINES_PER_DATAGRAM TOTAL_LINES RATE
//
// Prints one line: "sent <lines> lines in <datagrams> datagrams in <seconds> s = <lines/s>".
// The lines are counts over 100 series (`bench.ingest.hits:1|c|#env:prod,pod:web-<n>`), as many
// pods of one deployment would send them.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { kBatch = 64, kMaxLines = 64, kLineBytes = 64, kSeries = 100 };

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s PORT LINES_PER_DATAGRAM TOTAL_LINES RATE\n", argv[0]);
    return 2;
  }
  int port = atoi(argv[1]);
  int per = atoi(argv[2]);
  long long total = atoll(argv[3]);
  double rate = atof(argv[4]);
  if (port <= 0 || per < 1 || per > kMaxLines || total < 1 || rate < 0) {
    fprintf(stderr, "dogstatsd_sender: bad arguments\n");
    return 2;
  }

  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) {
    perror("socket");
    return 2;
  }
  int sndbuf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  if (connect(fd, (struct sockaddr*)&to, sizeof(to)) != 0) {
    perror("connect");
    return 2;
  }

  // Every datagram of a batch is built once: datagram i holds the lines of series i*per ... in turn.
  static char payload[kBatch][kMaxLines * kLineBytes];
  static struct iovec iov[kBatch];
  static struct mmsghdr msgs[kBatch];
  for (int d = 0; d < kBatch; ++d) {
    size_t len = 0;
    for (int l = 0; l < per; ++l) {
      int series = (d * per + l) % kSeries;
      len += (size_t)snprintf(payload[d] + len, kLineBytes, "%sbench.ingest.hits:1|c|#env:prod,pod:web-%d",
                              l == 0 ? "" : "\n", series);
    }
    iov[d].iov_base = payload[d];
    iov[d].iov_len = len;
    memset(&msgs[d], 0, sizeof(msgs[d]));
    msgs[d].msg_hdr.msg_iov = &iov[d];
    msgs[d].msg_hdr.msg_iovlen = 1;
  }

  long long datagrams = (total + per - 1) / per;
  long long sent = 0;  // datagrams
  double start = now_seconds();
  while (sent < datagrams) {
    if (rate > 0) {
      // Paced in batches: the batch waits until the schedule says its first line is due.
      double due = start + (double)(sent * per) / rate;
      double t;
      while ((t = now_seconds()) < due) {
        double wait = due - t;
        if (wait > 0.0002) {
          struct timespec ts = {0, (long)((wait - 0.0001) * 1e9)};
          nanosleep(&ts, NULL);
        }
      }
    }
    int n = (int)(datagrams - sent < kBatch ? datagrams - sent : kBatch);
    int done = sendmmsg(fd, msgs, (unsigned)n, 0);
    if (done < 0) {
      if (errno == EINTR || errno == ENOBUFS || errno == EAGAIN) continue;
      perror("sendmmsg");
      return 2;
    }
    sent += done;
  }
  double elapsed = now_seconds() - start;
  long long lines = sent * per;
  printf("sent %lld lines in %lld datagrams in %.3f s = %.0f lines/s\n", lines, sent, elapsed,
         elapsed > 0 ? (double)lines / elapsed : 0.0);
  close(fd);
  return 0;
}
