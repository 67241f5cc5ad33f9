/*
 * A node of Flannel's udp backend reduced to its wire format, for the interop test: it knows nothing
 * of weft. A TUN device without offloads or packet info, one UDP socket on the port; each packet read
 * from the TUN leaves as one datagram to the peer owning its destination (TTL − 1, as Flannel's proxy
 * does in both directions), each datagram received goes into the TUN. One packet per system call.
 *
 *   flannel-peer TUN LOCAL_IP PORT SUBNET/LEN=PEER_IP...
 *
 * On SIGTERM it prints "sent N received M" and exits.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

struct route {
  uint32_t net, mask, peer;
};
static struct route routes[64];
static int nroutes;
static volatile sig_atomic_t done;

static void on_term(int sig) {
  (void)sig;
  done = 1;
}

/* TTL − 1; the header checksum adjusted by the same amount (RFC 1624). */
static int ttl_down(uint8_t *ip) {
  if (ip[8] <= 1) return 0;
  ip[8]--;
  uint32_t c = (uint32_t)(ip[10] << 8 | ip[11]) + 0x100;
  c = (c & 0xffff) + (c >> 16);
  ip[10] = (uint8_t)(c >> 8);
  ip[11] = (uint8_t)c;
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: flannel-peer TUN LOCAL_IP PORT SUBNET/LEN=PEER_IP...\n");
    return 2;
  }
  for (int i = 4; i < argc && nroutes < 64; i++) {
    char net[32], peer[32];
    int len;
    if (sscanf(argv[i], "%31[^/]/%d=%31s", net, &len, peer) != 3) return 2;
    struct in_addr n, p;
    if (!inet_aton(net, &n) || !inet_aton(peer, &p)) return 2;
    routes[nroutes++] = (struct route){n.s_addr, htonl(~0u << (32 - len)), p.s_addr};
  }
  int tun = open("/dev/net/tun", O_RDWR);
  struct ifreq ifr = {0};
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", argv[1]);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  if (tun < 0 || ioctl(tun, TUNSETIFF, &ifr) < 0) {
    perror("tun");
    return 1;
  }
  int port = atoi(argv[3]);
  int sock = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_aton(argv[2], &local.sin_addr);
  if (bind(sock, (struct sockaddr *)&local, sizeof local) < 0) {
    perror("bind");
    return 1;
  }
  struct sigaction sa = {.sa_handler = on_term};
  sigaction(SIGTERM, &sa, NULL);
  printf("ready\n");
  fflush(stdout);
  unsigned long sent = 0, received = 0;
  uint8_t buf[65536];
  while (!done) {
    struct pollfd p[2] = {{tun, POLLIN, 0}, {sock, POLLIN, 0}};
    if (poll(p, 2, 200) <= 0) continue;
    if (p[0].revents & POLLIN) {
      ssize_t n = read(tun, buf, sizeof buf);
      if (n >= 20 && (buf[0] >> 4) == 4 && ttl_down(buf)) {
        uint32_t dst;
        memcpy(&dst, buf + 16, 4);
        for (int i = 0; i < nroutes; i++)
          if ((dst & routes[i].mask) == routes[i].net) {
            struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = {routes[i].peer}};
            if (sendto(sock, buf, (size_t)n, 0, (struct sockaddr *)&to, sizeof to) == n) sent++;
            break;
          }
      }
    }
    if (p[1].revents & POLLIN) {
      ssize_t n = recv(sock, buf, sizeof buf, 0);
      if (n >= 20 && ttl_down(buf) && write(tun, buf, (size_t)n) == n) received++;
    }
  }
  printf("sent %lu received %lu\n", sent, received);
  return 0;
}
