/* quic types that other modules hold without needing ngtcp2 or GnuTLS. */
#ifndef TOLLGATE_QUIC_T_H
#define TOLLGATE_QUIC_T_H

/* The TLS side of one QUIC listener in one generation (quic.h builds and frees it). */
typedef struct tg_quic_listener_s tg_quic_listener_t;

#endif
