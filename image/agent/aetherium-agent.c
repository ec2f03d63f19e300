/*
 * aetherium-agent: the guest side of the Aetherium exec protocol (see PROTOCOL.md).
 *
 *   aetherium-agent /dev/vportNpM
 *
 * One poll loop over the virtio-serial port, a self-pipe for SIGCHLD and the pipes of the running
 * commands. Frames are <u32 BE length><u8 type><payload>, length = 1 + payload length, at most
 * MAX_FRAME. Bad input never kills the agent: an oversized frame is answered with an error frame and
 * skipped, a malformed one is answered with an error frame. When the host side of the port goes away
 * (POLLHUP) the session ends: its commands are killed and the parser is reset for the next host.
 *
 * Built with: gcc -static -O2 -Wall -Wextra -o aetherium-agent aetherium-agent.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROTOCOL_VERSION 1
#define MAX_FRAME (1u << 20)          /* type byte + payload */
#define MAX_EXECS 64
#define OUT_HIGH_WATER (4u << 20)     /* stop reading command output while this much waits for the host */
#define CHUNK 65536
#define EXIT_GRACE_MS 300             /* after exit, how long to wait for pipes held by background children */
#define MAX_JSON_DEPTH 16

enum {
  T_HELLO = 0x01, T_EXEC = 0x02, T_STDIN = 0x03, T_KILL = 0x04, T_SHUTDOWN = 0x05,
  T_STARTED = 0x10, T_STDOUT = 0x11, T_STDERR = 0x12, T_EXIT = 0x13, T_ERROR = 0x1f,
};

struct buf { unsigned char *d; size_t len, cap; };

struct exec {
  int used;
  struct session *sess;
  uint32_t id;
  pid_t pid;
  int out_fd, err_fd, in_fd;
  struct buf in;
  int in_close;   /* host closed stdin: close in_fd once `in` is written */
  int exited, status;
  long long exit_at;
};

/* One session per virtio-serial port: several hosts (e.g. an old and a new driver instance) can be
 * connected at once, each on its own port, each with its own commands. */
struct session {
  int fd;
  int hup;                      /* no host connected */
  struct buf out;               /* bytes waiting to go to the host */
  unsigned char *inb;           /* bytes from the host not yet parsed */
  size_t in_len;
  unsigned long long skip_left; /* bytes of an oversized frame still to discard */
  int shutdown_pending;
  long long shutdown_deadline;
};
#define MAX_SESSIONS 8
static struct session sessions[MAX_SESSIONS];
static int nsessions;
static struct session *cur;     /* the session frames are sent to */
static struct session orphans = { .fd = -1, .hup = 1 }; /* commands of a session that ended */
static struct exec execs[MAX_EXECS];
static int sig_pipe[2];

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void logmsg(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "aetherium-agent: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static void buf_append(struct buf *b, const void *data, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    unsigned char *d = realloc(b->d, cap);
    if (!d) { logmsg("out of memory"); _exit(1); }
    b->d = d;
    b->cap = cap;
  }
  memcpy(b->d + b->len, data, n);
  b->len += n;
}

static void buf_consume(struct buf *b, size_t n) {
  memmove(b->d, b->d + n, b->len - n);
  b->len -= n;
  if (b->len == 0 && b->cap > (1u << 20)) { free(b->d); b->d = NULL; b->cap = 0; }
}

static void send_frame(int type, const void *p1, size_t n1, const void *p2, size_t n2) {
  if (!cur || cur->hup) return; /* nobody to send to: the session is over */
  uint32_t len = (uint32_t)(1 + n1 + n2);
  unsigned char hdr[5] = { len >> 24, len >> 16, len >> 8, len, (unsigned char)type };
  buf_append(&cur->out, hdr, 5);
  if (n1) buf_append(&cur->out, p1, n1);
  if (n2) buf_append(&cur->out, p2, n2);
}

static void send_json(int type, const char *fmt, ...) {
  char tmp[4096];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof tmp) n = sizeof tmp - 1;
  send_frame(type, tmp, (size_t)n, NULL, 0);
}

static void send_data(int type, uint32_t id, const void *data, size_t n) {
  unsigned char idb[4] = { id >> 24, id >> 16, id >> 8, id };
  send_frame(type, idb, 4, data, n);
}

/* A JSON string literal of `s` (ASCII control characters, quotes and backslashes escaped). */
static void json_quote(char *dst, size_t cap, const char *s) {
  size_t j = 0;
  if (cap < 3) { if (cap) dst[0] = 0; return; }
  dst[j++] = '"';
  for (; *s && j + 8 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') { dst[j++] = '\\'; dst[j++] = (char)c; }
    else if (c < 0x20) j += (size_t)snprintf(dst + j, cap - j, "\\u%04x", c);
    else dst[j++] = (char)c;
  }
  dst[j++] = '"';
  dst[j] = 0;
}

static void send_error(long long id, const char *code, const char *message) {
  char q[1024];
  json_quote(q, sizeof q, message);
  if (id >= 0) send_json(T_ERROR, "{\"id\":%lld,\"code\":\"%s\",\"message\":%s}", id, code, q);
  else send_json(T_ERROR, "{\"code\":\"%s\",\"message\":%s}", code, q);
}

/* --- a small JSON reader: enough for the control messages ------------------------------------ */

struct jp { const char *s; size_t i, n; int err; int depth; };

static void jws(struct jp *p) {
  while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r')) p->i++;
}

static int jpeek(struct jp *p) { jws(p); return p->i < p->n ? (unsigned char)p->s[p->i] : -1; }

static int jexpect(struct jp *p, char c) {
  if (jpeek(p) != (unsigned char)c) { p->err = 1; return 0; }
  p->i++;
  return 1;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static long jhex4(struct jp *p) {
  if (p->i + 4 > p->n) { p->err = 1; return -1; }
  long v = 0;
  for (int k = 0; k < 4; k++) {
    int h = hexval((unsigned char)p->s[p->i++]);
    if (h < 0) { p->err = 1; return -1; }
    v = v * 16 + h;
  }
  return v;
}

/* A decoded, NUL-terminated copy of a string literal (malloc'd), or NULL on error. \u0000 is refused. */
static char *jstring(struct jp *p) {
  if (!jexpect(p, '"')) return NULL;
  struct buf b = { 0 };
  while (p->i < p->n) {
    unsigned char c = (unsigned char)p->s[p->i++];
    if (c == '"') { buf_append(&b, "", 1); return (char *)b.d; }
    if (c < 0x20) break;
    if (c != '\\') { buf_append(&b, &c, 1); continue; }
    if (p->i >= p->n) break;
    char e = p->s[p->i++];
    char ch;
    switch (e) {
      case '"': ch = '"'; break;
      case '\\': ch = '\\'; break;
      case '/': ch = '/'; break;
      case 'b': ch = '\b'; break;
      case 'f': ch = '\f'; break;
      case 'n': ch = '\n'; break;
      case 'r': ch = '\r'; break;
      case 't': ch = '\t'; break;
      case 'u': {
        long cp = jhex4(p);
        if (cp < 0) goto fail;
        if (cp >= 0xd800 && cp <= 0xdbff) {
          if (p->i + 2 > p->n || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u') goto fail;
          p->i += 2;
          long lo = jhex4(p);
          if (lo < 0xdc00 || lo > 0xdfff) goto fail;
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if (cp >= 0xdc00 && cp <= 0xdfff) goto fail;
        if (cp == 0) goto fail;
        unsigned char u[4];
        size_t un;
        if (cp < 0x80) { u[0] = (unsigned char)cp; un = 1; }
        else if (cp < 0x800) { u[0] = 0xc0 | (cp >> 6); u[1] = 0x80 | (cp & 0x3f); un = 2; }
        else if (cp < 0x10000) { u[0] = 0xe0 | (cp >> 12); u[1] = 0x80 | ((cp >> 6) & 0x3f); u[2] = 0x80 | (cp & 0x3f); un = 3; }
        else { u[0] = 0xf0 | (cp >> 18); u[1] = 0x80 | ((cp >> 12) & 0x3f); u[2] = 0x80 | ((cp >> 6) & 0x3f); u[3] = 0x80 | (cp & 0x3f); un = 4; }
        buf_append(&b, u, un);
        continue;
      }
      default: goto fail;
    }
    buf_append(&b, &ch, 1);
  }
fail:
  p->err = 1;
  free(b.d);
  return NULL;
}

static double jnumber(struct jp *p) {
  jws(p);
  char tmp[64];
  size_t k = 0;
  while (p->i < p->n && k < sizeof tmp - 1 && strchr("+-0123456789.eE", p->s[p->i])) tmp[k++] = p->s[p->i++];
  tmp[k] = 0;
  char *end;
  double v = strtod(tmp, &end);
  if (k == 0 || *end) p->err = 1;
  return v;
}

static void jskip(struct jp *p) {
  int c = jpeek(p);
  if (++p->depth > MAX_JSON_DEPTH) { p->err = 1; return; }
  if (c == '"') free(jstring(p));
  else if (c == '{' || c == '[') {
    char close = c == '{' ? '}' : ']';
    p->i++;
    if (jpeek(p) == close) p->i++;
    else for (;;) {
      if (c == '{') { free(jstring(p)); jexpect(p, ':'); }
      jskip(p);
      if (p->err) break;
      if (jpeek(p) == ',') { p->i++; continue; }
      jexpect(p, close);
      break;
    }
  } else if (c == 't' && p->n - p->i >= 4 && !memcmp(p->s + p->i, "true", 4)) p->i += 4;
  else if (c == 'f' && p->n - p->i >= 5 && !memcmp(p->s + p->i, "false", 5)) p->i += 5;
  else if (c == 'n' && p->n - p->i >= 4 && !memcmp(p->s + p->i, "null", 4)) p->i += 4;
  else jnumber(p);
  p->depth--;
}

static int jbool(struct jp *p) {
  int c = jpeek(p);
  if (c == 't' && p->n - p->i >= 4 && !memcmp(p->s + p->i, "true", 4)) { p->i += 4; return 1; }
  if (c == 'f' && p->n - p->i >= 5 && !memcmp(p->s + p->i, "false", 5)) { p->i += 5; return 0; }
  p->err = 1;
  return 0;
}

/* Iterates the members of an object: calls fn(key) with p positioned at the value; fn must consume it. */
typedef void (*member_fn)(struct jp *p, const char *key, void *ctx);
static void jobject(struct jp *p, member_fn fn, void *ctx) {
  if (!jexpect(p, '{')) return;
  if (jpeek(p) == '}') { p->i++; return; }
  for (;;) {
    char *key = jstring(p);
    if (!key) return;
    if (!jexpect(p, ':')) { free(key); return; }
    fn(p, key, ctx);
    free(key);
    if (p->err) return;
    if (jpeek(p) == ',') { p->i++; continue; }
    jexpect(p, '}');
    return;
  }
}

static void strlist_push(char ***list, size_t *n, char *s) {
  char **l = realloc(*list, (*n + 2) * sizeof(char *));
  if (!l) { logmsg("out of memory"); _exit(1); }
  l[(*n)++] = s;
  l[*n] = NULL;
  *list = l;
}

static void strlist_free(char **list) {
  if (!list) return;
  for (char **q = list; *q; q++) free(*q);
  free(list);
}

struct exec_req {
  double id; int has_id;
  char *command, *cwd;
  char **args; size_t nargs;
  char **env; size_t nenv;
  int with_stdin;
  double signal; int has_signal;
};

static void env_member(struct jp *p, const char *key, void *ctx) {
  struct exec_req *r = ctx;
  char *v = jstring(p);
  if (!v) return;
  size_t kl = strlen(key), vl = strlen(v);
  if (kl == 0 || strchr(key, '=')) { free(v); p->err = 1; return; }
  char *kv = malloc(kl + vl + 2);
  if (!kv) _exit(1);
  memcpy(kv, key, kl);
  kv[kl] = '=';
  memcpy(kv + kl + 1, v, vl + 1);
  free(v);
  strlist_push(&r->env, &r->nenv, kv);
}

static void req_member(struct jp *p, const char *key, void *ctx) {
  struct exec_req *r = ctx;
  if (!strcmp(key, "id")) { r->id = jnumber(p); r->has_id = 1; }
  else if (!strcmp(key, "signal")) { r->signal = jnumber(p); r->has_signal = 1; }
  else if (!strcmp(key, "command")) { free(r->command); r->command = jstring(p); }
  else if (!strcmp(key, "cwd")) { free(r->cwd); r->cwd = jstring(p); }
  else if (!strcmp(key, "stdin")) r->with_stdin = jbool(p);
  else if (!strcmp(key, "args")) {
    if (!jexpect(p, '[')) return;
    if (jpeek(p) == ']') { p->i++; return; }
    for (;;) {
      char *s = jstring(p);
      if (!s) return;
      strlist_push(&r->args, &r->nargs, s);
      if (jpeek(p) == ',') { p->i++; continue; }
      jexpect(p, ']');
      return;
    }
  } else if (!strcmp(key, "env")) jobject(p, env_member, r);
  else jskip(p);
}

static void req_free(struct exec_req *r) {
  free(r->command);
  free(r->cwd);
  strlist_free(r->args);
  strlist_free(r->env);
}

/* Parses a control payload; on failure answers with an error frame and returns 0. */
static int parse_req(const unsigned char *payload, size_t n, struct exec_req *r, const char *what) {
  memset(r, 0, sizeof *r);
  struct jp p = { (const char *)payload, 0, n, 0, 0 };
  jobject(&p, req_member, r);
  if (!p.err && jpeek(&p) != -1) p.err = 1;
  long long id = r->has_id && r->id >= 0 && r->id <= 4294967295.0 && r->id == (double)(long long)r->id ? (long long)r->id : -1;
  if (p.err) {
    char msg[128];
    snprintf(msg, sizeof msg, "malformed JSON in %s frame at byte %zu", what, p.i);
    send_error(id, "bad_json", msg);
    req_free(r);
    return 0;
  }
  if (id < 0) {
    send_error(-1, "bad_frame", "missing or invalid \"id\"");
    req_free(r);
    return 0;
  }
  return 1;
}

/* --- commands ---------------------------------------------------------------------------------- */

static struct exec *find_exec(uint32_t id) {
  for (int k = 0; k < MAX_EXECS; k++) if (execs[k].used && execs[k].sess == cur && execs[k].id == id) return &execs[k];
  return NULL;
}

static void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static void close_fd(int *fd) { if (*fd >= 0) { close(*fd); *fd = -1; } }

static void start_exec(const unsigned char *payload, size_t n) {
  struct exec_req r;
  if (!parse_req(payload, n, &r, "exec")) return;
  uint32_t id = (uint32_t)r.id;
  struct exec *e = NULL;
  char msg[512];
  if (!r.command || !r.command[0]) { send_error(id, "bad_request", "\"command\" must be a non-empty string"); goto done; }
  if (find_exec(id)) { send_error(id, "duplicate_id", "an exec with this id is running"); goto done; }
  for (int k = 0; k < MAX_EXECS; k++) if (!execs[k].used) { e = &execs[k]; break; }
  if (!e) { send_error(id, "too_many_execs", "too many commands running at once"); goto done; }
  const char *cwd = r.cwd ? r.cwd : "/";
  struct stat st;
  if (stat(cwd, &st) != 0 || !S_ISDIR(st.st_mode)) {
    snprintf(msg, sizeof msg, "cwd %s is not a directory", cwd);
    send_error(id, "bad_cwd", msg);
    goto done;
  }
  int po[2] = { -1, -1 }, pe[2] = { -1, -1 }, pi[2] = { -1, -1 };
  if (pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC) || (r.with_stdin && pipe2(pi, O_CLOEXEC))) {
    snprintf(msg, sizeof msg, "pipe: %s", strerror(errno));
    send_error(id, "exec_failed", msg);
    for (int k = 0; k < 2; k++) { if (po[k] >= 0) close(po[k]); if (pe[k] >= 0) close(pe[k]); if (pi[k] >= 0) close(pi[k]); }
    goto done;
  }
  char **argv = NULL;
  size_t argc = 0;
  strlist_push(&argv, &argc, r.command);
  for (size_t k = 0; k < r.nargs; k++) strlist_push(&argv, &argc, r.args[k]);
  if (!r.env) strlist_push(&r.env, &r.nenv, strdup("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
  pid_t pid = fork();
  if (pid == 0) {
    /* the child: its own session and process group, so that a kill reaches what it starts */
    setsid();
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    int in = r.with_stdin ? pi[0] : open("/dev/null", O_RDONLY);
    dup2(in, 0);
    dup2(po[1], 1);
    dup2(pe[1], 2);
    if (chdir(cwd) != 0) { dprintf(2, "aetherium-agent: chdir %s: %s\n", cwd, strerror(errno)); _exit(126); }
    extern char **environ;
    environ = r.env;
    execvp(r.command, argv);
    int err = errno;
    dprintf(2, "aetherium-agent: cannot run %s: %s\n", r.command, strerror(err));
    _exit(err == ENOENT || err == ENOTDIR ? 127 : 126);
  }
  free(argv); /* the strings belong to r */
  close(po[1]);
  close(pe[1]);
  if (pi[0] >= 0) close(pi[0]);
  if (pid < 0) {
    snprintf(msg, sizeof msg, "fork: %s", strerror(errno));
    send_error(id, "exec_failed", msg);
    close(po[0]); close(pe[0]); if (pi[1] >= 0) close(pi[1]);
    goto done;
  }
  memset(e, 0, sizeof *e);
  e->used = 1;
  e->sess = cur;
  e->id = id;
  e->pid = pid;
  e->out_fd = po[0];
  e->err_fd = pe[0];
  e->in_fd = pi[1];
  set_nonblock(e->out_fd);
  set_nonblock(e->err_fd);
  if (e->in_fd >= 0) set_nonblock(e->in_fd);
  send_json(T_STARTED, "{\"id\":%u,\"pid\":%d}", id, (int)pid);
done:
  req_free(&r);
}

static void kill_exec(struct exec *e, int sig) {
  if (e->pid > 1) {
    kill(-e->pid, sig);
    if (!e->exited) kill(e->pid, sig);
  }
}

static void on_kill(const unsigned char *payload, size_t n) {
  struct exec_req r;
  if (!parse_req(payload, n, &r, "kill")) return;
  int sig = r.has_signal ? (int)r.signal : SIGKILL;
  struct exec *e = find_exec((uint32_t)r.id);
  if (sig < 1 || sig > 64) send_error((long long)r.id, "bad_request", "invalid signal");
  else if (e) kill_exec(e, sig);
  /* an unknown id is not an error: the command may have just finished */
  req_free(&r);
}

static void on_stdin(const unsigned char *payload, size_t n) {
  if (n < 4) { send_error(-1, "bad_frame", "stdin frame shorter than its id"); return; }
  uint32_t id = (uint32_t)payload[0] << 24 | (uint32_t)payload[1] << 16 | (uint32_t)payload[2] << 8 | payload[3];
  struct exec *e = find_exec(id);
  if (!e || e->in_fd < 0) return; /* finished, or its stdin was closed already: drop */
  if (n == 4) e->in_close = 1;
  else buf_append(&e->in, payload + 4, n - 4);
}

static void kill_all(void) {
  for (int k = 0; k < MAX_EXECS; k++) if (execs[k].used && execs[k].sess == cur) kill_exec(&execs[k], SIGKILL);
}

static void finish_exec(struct exec *e) {
  cur = e->sess;
  close_fd(&e->out_fd);
  close_fd(&e->err_fd);
  close_fd(&e->in_fd);
  free(e->in.d);
  int code = WIFEXITED(e->status) ? WEXITSTATUS(e->status) : 128 + WTERMSIG(e->status);
  int sig = WIFSIGNALED(e->status) ? WTERMSIG(e->status) : 0;
  send_json(T_EXIT, "{\"id\":%u,\"exit_code\":%d,\"signal\":%d}", e->id, code, sig);
  memset(e, 0, sizeof *e);
  e->out_fd = e->err_fd = e->in_fd = -1;
}

static void reap(void) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    for (int k = 0; k < MAX_EXECS; k++) {
      if (execs[k].used && execs[k].pid == pid && !execs[k].exited) {
        execs[k].exited = 1;
        execs[k].status = status;
        execs[k].exit_at = now_ms();
      }
    }
  }
}

/* --- frames from the host ---------------------------------------------------------------------- */

static void dispatch(int type, const unsigned char *payload, size_t n) {
  switch (type) {
    case T_HELLO: {
      struct utsname u;
      char rel[256] = "\"\"";
      if (uname(&u) == 0) json_quote(rel, sizeof rel, u.release);
      send_json(T_HELLO, "{\"version\":%d,\"agent\":\"aetherium-agent\",\"kernel\":%s,\"max_frame\":%u}", PROTOCOL_VERSION, rel, MAX_FRAME);
      break;
    }
    case T_EXEC: start_exec(payload, n); break;
    case T_STDIN: on_stdin(payload, n); break;
    case T_KILL: on_kill(payload, n); break;
    case T_SHUTDOWN:
      kill_all();
      cur->shutdown_pending = 1;
      cur->shutdown_deadline = now_ms() + 2000;
      break;
    default: {
      char msg[64];
      snprintf(msg, sizeof msg, "unknown frame type 0x%02x", type);
      send_error(-1, "unknown_type", msg);
    }
  }
}

static void parse_input(void) {
  unsigned char *inb = cur->inb;
  size_t in_len = cur->in_len;
  size_t off = 0;
  for (;;) {
    if (cur->skip_left) {
      size_t k = in_len - off < cur->skip_left ? in_len - off : (size_t)cur->skip_left;
      off += k;
      cur->skip_left -= k;
      if (cur->skip_left) break;
    }
    if (in_len - off < 4) break;
    const unsigned char *h = inb + off;
    uint32_t len = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    if (len == 0) { send_error(-1, "bad_frame", "frame of length 0 (no type byte)"); off += 4; continue; }
    if (len > MAX_FRAME) {
      char msg[128];
      snprintf(msg, sizeof msg, "frame of %u bytes is over the limit of %u; skipped", len, MAX_FRAME);
      send_error(-1, "frame_too_large", msg);
      off += 4;
      cur->skip_left = len;
      continue;
    }
    if (in_len - off < 4 + (size_t)len) break;
    dispatch(h[4], h + 5, len - 1);
    off += 4 + len;
  }
  memmove(inb, inb + off, in_len - off);
  cur->in_len = in_len - off;
}

static void session_reset(struct session *s) {
  s->out.len = 0;
  s->in_len = 0;
  s->skip_left = 0;
  s->shutdown_pending = 0;
}

static void session_end(struct session *s) {
  cur = s;
  kill_all();
  for (int k = 0; k < MAX_EXECS; k++) if (execs[k].used && execs[k].sess == s) execs[k].sess = &orphans;
  session_reset(s);
  /* whatever the old host left unread in the port */
  unsigned char junk[4096];
  while (read(s->fd, junk, sizeof junk) > 0) {}
}

static void on_sigchld(int sig) {
  (void)sig;
  int saved = errno;
  if (write(sig_pipe[1], "c", 1) < 0) {}
  errno = saved;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > MAX_SESSIONS + 1) { fprintf(stderr, "usage: aetherium-agent /dev/<virtio-serial port>...\n"); return 2; }
  signal(SIGPIPE, SIG_IGN);
  if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK)) { logmsg("pipe: %s", strerror(errno)); return 1; }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigchld;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigaction(SIGCHLD, &sa, NULL);
  for (int a = 1; a < argc; a++) {
    struct session *s = &sessions[nsessions];
    s->fd = open(argv[a], O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (s->fd < 0) { logmsg("open %s: %s", argv[a], strerror(errno)); continue; }
    s->hup = 1;
    s->inb = malloc(MAX_FRAME + 4 + CHUNK);
    if (!s->inb) return 1;
    nsessions++;
    logmsg("protocol %d on %s", PROTOCOL_VERSION, argv[a]);
  }
  if (!nsessions) return 1;
  for (int k = 0; k < MAX_EXECS; k++) execs[k].out_fd = execs[k].err_fd = execs[k].in_fd = -1;

  struct pollfd fds[1 + MAX_SESSIONS + 3 * MAX_EXECS];
  struct { int kind; struct exec *e; struct session *s; } what[1 + MAX_SESSIONS + 3 * MAX_EXECS];
  for (;;) {
    long long now = now_ms();
    int timeout = 1000;
    /* has a host (dis)connected? */
    for (int i = 0; i < nsessions; i++) {
      struct session *s = &sessions[i];
      struct pollfd pp = { s->fd, POLLIN, 0 };
      poll(&pp, 1, 0);
      /* POLLHUP means no host is connected, even when POLLIN is set beside it (read then returns 0):
         treating that as connected made the main poll return at once, forever — a core per idle VM. */
      int hup = (pp.revents & (POLLHUP | POLLERR)) != 0;
      if (hup && !s->hup) { session_end(s); s->hup = 1; }
      else if (!hup && s->hup) { s->hup = 0; session_reset(s); }
      if (s->hup) timeout = 100;
    }
    for (int k = 0; k < MAX_EXECS; k++) {
      struct exec *e = &execs[k];
      if (!e->used || !e->exited) continue;
      if ((e->out_fd < 0 && e->err_fd < 0) || now - e->exit_at >= EXIT_GRACE_MS) finish_exec(e);
      else if (timeout > 50) timeout = 50;
    }
    for (int i = 0; i < nsessions; i++) {
      struct session *s = &sessions[i];
      if (!s->shutdown_pending) continue;
      int busy = 0;
      for (int k = 0; k < MAX_EXECS; k++) busy |= execs[k].used && execs[k].sess == s;
      if (!busy || now >= s->shutdown_deadline) {
        sync();
        cur = s;
        send_json(T_SHUTDOWN, "{\"synced\":true}");
        s->shutdown_pending = 0;
      } else if (timeout > 20) timeout = 20;
    }

    int nf = 0;
    fds[nf] = (struct pollfd){ sig_pipe[0], POLLIN, 0 }; what[nf].kind = 0; nf++;
    size_t backlog = 0;
    for (int i = 0; i < nsessions; i++) {
      struct session *s = &sessions[i];
      if (s->hup) continue;
      backlog += s->out.len;
      short ev = 0;
      if (s->in_len < MAX_FRAME + 4) ev |= POLLIN;
      if (s->out.len) ev |= POLLOUT;
      fds[nf] = (struct pollfd){ s->fd, ev, 0 }; what[nf].kind = 1; what[nf].s = s; nf++;
    }
    for (int k = 0; k < MAX_EXECS; k++) {
      struct exec *e = &execs[k];
      if (!e->used) continue;
      if (e->sess->out.len < OUT_HIGH_WATER) {
        if (e->out_fd >= 0) { fds[nf] = (struct pollfd){ e->out_fd, POLLIN, 0 }; what[nf].kind = 2; what[nf].e = e; nf++; }
        if (e->err_fd >= 0) { fds[nf] = (struct pollfd){ e->err_fd, POLLIN, 0 }; what[nf].kind = 3; what[nf].e = e; nf++; }
      }
      if (e->in_fd >= 0 && (e->in.len || e->in_close)) { fds[nf] = (struct pollfd){ e->in_fd, POLLOUT, 0 }; what[nf].kind = 4; what[nf].e = e; nf++; }
    }
    (void)backlog;
    int r = poll(fds, (nfds_t)nf, timeout);
    if (r < 0 && errno != EINTR) { logmsg("poll: %s", strerror(errno)); sleep(1); continue; }
    if (r <= 0) continue;

    unsigned char chunk[CHUNK];
    for (int k = 0; k < nf; k++) {
      short re = fds[k].revents;
      if (!re) continue;
      struct exec *e = what[k].e;
      switch (what[k].kind) {
        case 0: {
          while (read(sig_pipe[0], chunk, sizeof chunk) > 0) {}
          reap();
          break;
        }
        case 1: {
          struct session *s = what[k].s;
          cur = s;
          if (re & POLLOUT && s->out.len) {
            ssize_t w = write(s->fd, s->out.d, s->out.len);
            if (w > 0) buf_consume(&s->out, (size_t)w);
          }
          if (re & POLLIN) {
            ssize_t n = read(s->fd, s->inb + s->in_len, MAX_FRAME + 4 + CHUNK - s->in_len);
            if (n > 0) { s->in_len += (size_t)n; parse_input(); }
            else if (n == 0 || (errno != EAGAIN && errno != EINTR)) { session_end(s); s->hup = 1; }
          } else if (re & (POLLHUP | POLLERR)) {
            /* The host went away between the checks: stop polling this port until it comes back. */
            session_end(s);
            s->hup = 1;
          }
          break;
        }
        case 2:
        case 3: {
          int *fd = what[k].kind == 2 ? &e->out_fd : &e->err_fd;
          if (*fd < 0) break;
          ssize_t n = read(*fd, chunk, sizeof chunk);
          cur = e->sess;
          if (n > 0) send_data(what[k].kind == 2 ? T_STDOUT : T_STDERR, e->id, chunk, (size_t)n);
          else if (n == 0 || (errno != EAGAIN && errno != EINTR)) close_fd(fd);
          break;
        }
        case 4: {
          if (e->in_fd < 0) break;
          if (e->in.len) {
            ssize_t w = write(e->in_fd, e->in.d, e->in.len);
            if (w > 0) buf_consume(&e->in, (size_t)w);
            else if (w < 0 && errno != EAGAIN && errno != EINTR) { close_fd(&e->in_fd); e->in.len = 0; break; }
          }
          if (!e->in.len && e->in_close) close_fd(&e->in_fd);
          break;
        }
      }
    }
  }
}
