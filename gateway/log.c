/*
 * Structured logging: one JSON object per line on stderr, e.g.
 *   {"time":"2026-11-28T08:00:00.123Z","level":"info","module":"idp","event":"login.success","user":"alice"}
 * Values come from callers as plain strings; they are JSON-escaped (no CR/LF injection) and truncated. Callers
 * never pass secrets (passwords, tokens, cookies, SAML messages): this module cannot tell them apart.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "gateway/gateway.h"

#define LOG_VALUE_MAX 256
#define LOG_LINE_MAX  4096

static size_t append_escaped(char *buf, size_t pos, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s != '\0' && n < LOG_VALUE_MAX && pos + 8 < cap; ++s, ++n) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[pos++] = '\\';
            buf[pos++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            pos += (size_t)snprintf(buf + pos, cap - pos, "\\u%04x", c);
        } else {
            buf[pos++] = (char)c;
        }
    }
    if (*s != '\0' && pos + 4 < cap) {
        memcpy(buf + pos, "...", 3);
        pos += 3;
    }
    return pos;
}

static size_t append_raw(char *buf, size_t pos, size_t cap, const char *s)
{
    size_t len = strlen(s);
    if (pos + len >= cap)
        len = cap - pos - 1;
    memcpy(buf + pos, s, len);
    return pos + len;
}

static size_t append_pair(char *buf, size_t pos, size_t cap, const char *key, const char *value)
{
    pos = append_raw(buf, pos, cap, ",\"");
    pos = append_escaped(buf, pos, cap, key);
    pos = append_raw(buf, pos, cap, "\":\"");
    pos = append_escaped(buf, pos, cap, value != NULL ? value : "");
    return append_raw(buf, pos, cap, "\"");
}

void gw_log(const char *level, const char *module, const char *event, ...)
{
    char buf[LOG_LINE_MAX], ts[32];
    struct timeval tv;
    struct tm tm;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t tl = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tl, sizeof(ts) - tl, ".%03dZ", (int)(tv.tv_usec / 1000));

    size_t pos = append_raw(buf, 0, sizeof(buf), "{\"time\":\"");
    pos = append_raw(buf, pos, sizeof(buf), ts);
    pos = append_raw(buf, pos, sizeof(buf), "\"");
    pos = append_pair(buf, pos, sizeof(buf), "level", level);
    pos = append_pair(buf, pos, sizeof(buf), "module", module);
    pos = append_pair(buf, pos, sizeof(buf), "event", event);

    va_list ap;
    va_start(ap, event);
    const char *key;
    while ((key = va_arg(ap, const char *)) != NULL) {
        const char *value = va_arg(ap, const char *);
        pos = append_pair(buf, pos, sizeof(buf), key, value);
    }
    va_end(ap);
    pos = append_raw(buf, pos, sizeof(buf) - 1, "}");
    buf[pos++] = '\n';
    fwrite(buf, 1, pos, stderr);
}
