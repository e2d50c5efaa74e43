/*
 * QR code of the otpauth:// URI for enrolment pages, as inline SVG: a pure text document (no script, no
 * external reference, no fixed size) that the page can embed under its CSP. libqrencode builds the matrix
 * (level M); each horizontal run of dark modules becomes one "M x y h n v1 h-n z" sub-path of a single <path>,
 * on a white background rect with a 4-module quiet zone so that scanners also work on dark page themes.
 * stroke="none" is the SVG default but spelt out: ImageMagick's renderer otherwise strokes the runs into blobs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qrencode.h>

#include "mfa/mfa.h"

#define QUIET 4
/* longest sub-path: "M" + 2 coordinates (<= 3 digits each) + "h" + 3 digits + "v1h-" + 3 digits + "z" */
#define RUN_MAX 32

static const char HEAD[] = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
                           "shape-rendering=\"crispEdges\"><rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>"
                           "<path fill=\"#000\" stroke=\"none\" d=\"";
static const char TAIL[] = "\"/></svg>\n";

static int dark(const QRcode *qr, int x, int y)
{
    return qr->data[y * qr->width + x] & 1;
}

static size_t count_runs(const QRcode *qr)
{
    size_t runs = 0;
    for (int y = 0; y != qr->width; ++y)
        for (int x = 0; x != qr->width; ++x)
            if (dark(qr, x, y) && (x == 0 || !dark(qr, x - 1, y)))
                ++runs;
    return runs;
}

char *mfa_qr_svg(const char *text)
{
    if (text == NULL || strnlen(text, MFA_QR_TEXT_MAX + 1) > MFA_QR_TEXT_MAX || text[0] == '\0')
        return NULL;
    QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    if (qr == NULL)
        return NULL;

    char *svg = NULL;
    int side = qr->width + 2 * QUIET;
    size_t cap = sizeof(HEAD) + 4 * 12 + count_runs(qr) * RUN_MAX + sizeof(TAIL);
    if ((svg = malloc(cap)) == NULL)
        goto Exit;
    int n = snprintf(svg, cap, HEAD, side, side, side, side);
    if (n < 0 || (size_t)n >= cap)
        goto Fail;
    size_t used = (size_t)n;
    for (int y = 0; y != qr->width; ++y) {
        for (int x = 0; x != qr->width;) {
            if (!dark(qr, x, y)) {
                ++x;
                continue;
            }
            int start = x;
            while (x != qr->width && dark(qr, x, y))
                ++x;
            n = snprintf(svg + used, cap - used, "M%d %dh%dv1h-%dz", start + QUIET, y + QUIET, x - start, x - start);
            if (n < 0 || (size_t)n >= cap - used)
                goto Fail;
            used += (size_t)n;
        }
    }
    n = snprintf(svg + used, cap - used, "%s", TAIL);
    if (n < 0 || (size_t)n >= cap - used)
        goto Fail;
    goto Exit;

Fail:
    free(svg);
    svg = NULL;
Exit:
    QRcode_free(qr);
    return svg;
}
