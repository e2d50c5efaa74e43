/*
 * Outgoing email (password reset links, credential-change notices) through libcurl's SMTP client. Blocking:
 * called on worker threads only. smtp:// upgrades with STARTTLS when the server offers it; smtps:// is TLS from
 * the start. Addresses are checked for header-breaking characters before anything is sent; message bodies are
 * plain text composed by portier (never user-controlled beyond the user's own name and address).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "gateway/internal.h"

#define MAIL_TIMEOUT_S 20

typedef struct st_upload_t {
    const char *data;
    size_t len, pos;
} upload_t;

static size_t read_cb(char *buf, size_t size, size_t nmemb, void *arg)
{
    upload_t *u = arg;
    size_t n = size * nmemb;
    if (n > u->len - u->pos)
        n = u->len - u->pos;
    memcpy(buf, u->data + u->pos, n);
    u->pos += n;
    return n;
}

static int safe_address(const char *a)
{
    const char *at = a != NULL ? strchr(a, '@') : NULL;
    if (at == NULL || at == a || at[1] == '\0' || strchr(at + 1, '@') != NULL || strlen(a) > 254)
        return 0;
    for (const unsigned char *p = (const unsigned char *)a; *p != '\0'; ++p)
        if (*p <= 0x20 || *p == 0x7f || *p == '<' || *p == '>' || *p == ',' || *p == ';' || *p == '"')
            return 0;
    return 1;
}

int gw_mail_configured(const gw_config_t *conf)
{
    return conf->smtp_url != NULL && conf->smtp_from != NULL;
}

int gw_mail_send(const gw_config_t *conf, const char *to, const char *subject, const char *body)
{
    if (!gw_mail_configured(conf) || !safe_address(to) || !safe_address(conf->smtp_from))
        return -1;
    char date[64], *msg = NULL;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    int len = asprintf(&msg,
                       "Date: %s\r\nFrom: portier <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMIME-Version: 1.0\r\n"
                       "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
                       "Auto-Submitted: auto-generated\r\n\r\n%s",
                       date, conf->smtp_from, to, subject, body);
    if (len < 0)
        return -1;
    upload_t up = {msg, (size_t)len, 0};
    CURL *curl = curl_easy_init();
    struct curl_slist *rcpt = curl_slist_append(NULL, to);
    int rc = -1;
    if (curl != NULL && rcpt != NULL) {
        curl_easy_setopt(curl, CURLOPT_URL, conf->smtp_url);
        curl_easy_setopt(curl, CURLOPT_MAIL_FROM, conf->smtp_from);
        curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, rcpt);
        curl_easy_setopt(curl, CURLOPT_READFUNCTION, read_cb);
        curl_easy_setopt(curl, CURLOPT_READDATA, &up);
        curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(curl, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT, (long)MAIL_TIMEOUT_S);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        CURLcode res = curl_easy_perform(curl);
        if (res == CURLE_OK)
            rc = 0;
        else
            gw_log("error", "mail", "send_failed", "detail", curl_easy_strerror(res), NULL);
    }
    curl_slist_free_all(rcpt);
    if (curl != NULL)
        curl_easy_cleanup(curl);
    OPENSSL_cleanse(msg, (size_t)len); /* may hold a reset link */
    free(msg);
    return rc;
}
