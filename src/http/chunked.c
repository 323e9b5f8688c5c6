/* http chunked: the incremental decoder for the chunked transfer coding (RFC 9112 §7.1),
 * a state machine that takes its input in pieces of any size, down to single bytes. */
#include <string.h>

#include "tollgate/http.h"

#define MAX_CHUNK_SIZE (UINT64_C(1) << 62)
#define MAX_SIZE_DIGITS 16
#define MAX_LINE 4096
#define MAX_TRAILERS 8192

enum {
    S_SIZE = 0, /* chunk-size hex digits; 0 so that a zeroed decoder is a fresh one */
    S_SIZE_WS,  /* BWS after the size: only an extension may follow */
    S_EXT,      /* chunk extensions, up to CR */
    S_SIZE_LF,  /* the LF ending the size line */
    S_DATA,     /* _remaining bytes of chunk data */
    S_DATA_CR,  /* the CRLF after the data */
    S_DATA_LF,
    S_TRAILER,      /* the start of a trailer line, or of the final CRLF */
    S_TRAILER_NAME, /* a trailer field name, up to ':' */
    S_TRAILER_VAL,  /* a trailer field value, up to CR */
    S_TRAILER_LF,   /* the LF ending a trailer line */
    S_FINAL_LF,     /* the LF of the empty line ending the body */
    S_DONE,
    S_ERROR
};

static inline int hex_value(unsigned char ch)
{
    if ((unsigned)(ch - '0') < 10)
        return ch - '0';
    ch |= 0x20;
    if ((unsigned)(ch - 'a') < 6)
        return ch - 'a' + 10;
    return -1;
}

/* Control characters other than HTAB, and DEL: never in a field or an extension. */
static inline bool is_ctl(unsigned char ch)
{
    return (ch < 0x20 && ch != '\t') || ch == 0x7f;
}

void tg_http_chunked_init(tg_http_chunked_t *c)
{
    memset(c, 0, sizeof(*c));
    c->_state = S_SIZE;
}

int tg_http_chunked_decode(tg_http_chunked_t *c, const char *in, size_t len, size_t *consumed,
                           const char **data, size_t *data_len)
{
    size_t i = 0;

    *data = NULL;
    *data_len = 0;
    if (c->_state == S_DONE || c->_state == S_ERROR) {
        *consumed = 0;
        return c->_state == S_DONE ? TG_CHUNKED_DONE : TG_CHUNKED_ERROR;
    }
    while (i < len) {
        if (c->_state == S_DATA) {
            size_t n = len - i;
            if (n > c->_remaining)
                n = (size_t)c->_remaining;
            c->_remaining -= n;
            if (c->_remaining == 0)
                c->_state = S_DATA_CR;
            *data = in + i;
            *data_len = n;
            *consumed = i + n;
            return TG_CHUNKED_DATA;
        }

        unsigned char ch = (unsigned char)in[i++];
        /* Bound every line we hold no data for, so a peer cannot keep us parsing. */
        if (c->_state <= S_EXT && ++c->_line_len > MAX_LINE)
            goto fail;
        if (c->_state >= S_TRAILER &&
            (++c->_line_len > MAX_LINE || ++c->_trailer_bytes > MAX_TRAILERS))
            goto fail;
        switch (c->_state) {
        case S_SIZE: {
            int h = hex_value(ch);
            if (h >= 0) {
                if (c->_digits == MAX_SIZE_DIGITS ||
                    c->_remaining > (MAX_CHUNK_SIZE - (uint64_t)h) >> 4)
                    goto fail;
                c->_remaining = c->_remaining << 4 | (uint64_t)h;
                c->_digits++;
            } else if (c->_digits == 0) {
                goto fail;
            } else if (ch == '\r') {
                c->_state = S_SIZE_LF;
            } else if (ch == ';') {
                c->_state = S_EXT;
            } else if (ch == ' ' || ch == '\t') {
                c->_state = S_SIZE_WS;
            } else {
                goto fail;
            }
            break;
        }
        case S_SIZE_WS:
            if (ch == ';')
                c->_state = S_EXT;
            else if (ch != ' ' && ch != '\t')
                goto fail;
            break;
        case S_EXT:
            /* Extensions are checked only for what makes lines ambiguous (CR, LF, other
             * controls): we drop them when re-chunking, so no peer ever reads them. */
            if (ch == '\r')
                c->_state = S_SIZE_LF;
            else if (is_ctl(ch))
                goto fail;
            break;
        case S_SIZE_LF:
            if (ch != '\n')
                goto fail;
            c->_line_len = 0;
            c->_state = c->_remaining == 0 ? S_TRAILER : S_DATA;
            break;
        case S_DATA_CR:
            if (ch != '\r')
                goto fail;
            c->_state = S_DATA_LF;
            break;
        case S_DATA_LF:
            if (ch != '\n')
                goto fail;
            c->_state = S_SIZE;
            c->_digits = 0;
            c->_line_len = 0;
            break;
        case S_TRAILER:
            if (ch == '\r') {
                c->_state = S_FINAL_LF;
            } else if (tg_http_is_tchar(ch)) {
                c->_state = S_TRAILER_NAME;
            } else {
                /* a bare LF, obs-fold, whitespace or ':' where a name must start */
                goto fail;
            }
            break;
        case S_TRAILER_NAME:
            if (ch == ':')
                c->_state = S_TRAILER_VAL;
            else if (!tg_http_is_tchar(ch))
                goto fail;
            break;
        case S_TRAILER_VAL:
            if (ch == '\r')
                c->_state = S_TRAILER_LF;
            else if (is_ctl(ch))
                goto fail;
            break;
        case S_TRAILER_LF:
            if (ch != '\n')
                goto fail;
            c->_state = S_TRAILER;
            c->_line_len = 0;
            break;
        case S_FINAL_LF:
            if (ch != '\n')
                goto fail;
            c->_state = S_DONE;
            *consumed = i;
            return TG_CHUNKED_DONE;
        default:
            goto fail;
        }
    }
    *consumed = len;
    return TG_CHUNKED_MORE;

fail:
    c->_state = S_ERROR;
    *consumed = i;
    return TG_CHUNKED_ERROR;
}
