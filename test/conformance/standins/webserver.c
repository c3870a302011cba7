/*
 * Stand-in for the nginx and httpd images critest pulls (berth's conformance harness,
 * scripts/conformance.sh): what the specs observe of those servers and nothing more.
 *   -DNGINX: comm "nginx", cmdline "nginx: master process nginx -g daemon off;" (it
 *            re-executes itself under that argv[0]), writes /var/run/nginx.pid.
 *   -DHTTPD: logs Apache's "Command line: 'httpd -D FOREGROUND'" line on stderr.
 *   -DPORT=N: answers every HTTP request on port N with 200 and a small page.
 * SIGTERM, SIGINT and SIGQUIT end it at once (as PID 1 it has no default action).
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef PORT
#define PORT 80
#endif

#ifdef NGINX
#define TITLE "nginx: master process nginx -g daemon off;"
#define SERVER "nginx"
#else
#define SERVER "Apache"
#endif

static const char page[] = "<html><body><h1>It works!</h1></body></html>\n";

static void stop(int sig) {
  (void)sig;
  _exit(0);
}

static int listen_on(int port) {
  int one = 1, zero = 0;
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  if (fd >= 0) {
    struct sockaddr_in6 a6;
    memset(&a6, 0, sizeof a6);
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(port);
    a6.sin6_addr = in6addr_any;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(fd, (struct sockaddr *)&a6, sizeof a6) == 0 && listen(fd, 64) == 0) return fd;
    close(fd);
  }
  /* No IPv6 in this network namespace: IPv4 only. */
  fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in a4;
  memset(&a4, 0, sizeof a4);
  a4.sin_family = AF_INET;
  a4.sin_port = htons(port);
  a4.sin_addr.s_addr = htonl(INADDR_ANY);
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&a4, sizeof a4) != 0 || listen(fd, 64) != 0) return -1;
  return fd;
}

int main(int argc, char **argv) {
  (void)argc;
#ifdef NGINX
  if (strcmp(argv[0], TITLE) != 0) {
    /* The file name gives comm ("nginx"); argv[0] gives the cmdline nginx shows. */
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
      self[n] = 0;
      char *args[] = {TITLE, NULL};
      execv(self, args);
    }
    perror("nginx: re-exec");
    return 1;
  }
#else
  (void)argv;
#endif
  signal(SIGTERM, stop);
  signal(SIGINT, stop);
  signal(SIGQUIT, stop);
  signal(SIGPIPE, SIG_IGN);
  int fd = listen_on(PORT);
  if (fd < 0) {
    fprintf(stderr, SERVER ": cannot listen on port %d: %s\n", PORT, strerror(errno));
    return 1;
  }
#ifdef NGINX
  FILE *pid = fopen("/var/run/nginx.pid", "w");
  if (pid) {
    fprintf(pid, "%d\n", (int)getpid());
    fclose(pid);
  }
#endif
#ifdef HTTPD
  fprintf(stderr, "[mpm_event:notice] [pid %d:tid 1] AH00489: Apache/2.4.39 (Unix) configured -- resuming normal operations\n", (int)getpid());
  fprintf(stderr, "[core:notice] [pid %d:tid 1] AH00094: Command line: 'httpd -D FOREGROUND'\n", (int)getpid());
#endif
  char head[512];
  snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nServer: " SERVER "\r\nContent-Type: text/html\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", sizeof page - 1);
  for (;;) {
    int c = accept(fd, NULL, NULL);
    if (c < 0) continue;
    /* Read the request head (up to the blank line, or whatever comes first). */
    char buf[4096];
    size_t got = 0;
    while (got < sizeof buf - 1) {
      ssize_t n = read(c, buf + got, sizeof buf - 1 - got);
      if (n <= 0) break;
      got += (size_t)n;
      buf[got] = 0;
      if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n")) break;
    }
    if (write(c, head, strlen(head)) > 0 && strncmp(buf, "HEAD ", 5) != 0) {
      ssize_t ignored = write(c, page, sizeof page - 1);
      (void)ignored;
    }
    close(c);
  }
}
