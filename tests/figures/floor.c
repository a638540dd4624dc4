// SPDX-License-Identifier: GPL-2.0-only
/*
 * The user-space floor of tests/figures/benchmark.py: the least a packet-socket
 * responder can do. Blocking recvfrom() on one interface, and for an ARP
 * request for ADDRESS or an ICMP echo request to its MAC: swap the
 * addresses, patch the ICMP checksum (RFC 1624), insert a VLAN 0 tag, send.
 * No validation, no options, no IPv6: it is a yardstick, not a tool.
 *
 * USAGE: floor INTERFACE ADDRESS      (built by tests/figures/benchmark.py with cc)
 */
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const unsigned char MAC[6] = {0x02, 0x76, 0x6c, 0x61, 0x6e, 0x30};  /* "vlan0" */
static const unsigned char TAG[4] = {0x81, 0x00, 0x00, 0x00};             /* vlan 0, p 0 */

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s INTERFACE ADDRESS\n", argv[0]);
		return 2;
	}
	int s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	struct sockaddr_ll here = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
				   .sll_ifindex = (int)if_nametoindex(argv[1])};
	struct in_addr address;
	if (s < 0 || !here.sll_ifindex || !inet_aton(argv[2], &address)
	    || bind(s, (struct sockaddr *)&here, sizeof(here)) < 0) {
		perror("floor");
		return 1;
	}
	unsigned char in[2048], out[2048 + 4];
	for (;;) {
		struct sockaddr_ll from;
		socklen_t fromlen = sizeof(from);
		ssize_t n = recvfrom(s, in, sizeof(in), 0, (struct sockaddr *)&from, &fromlen);
		if (n < 42 || from.sll_pkttype == PACKET_OUTGOING)
			continue;
		memcpy(out, in + 6, 6);           /* to the requester */
		memcpy(out + 6, MAC, 6);
		memcpy(out + 12, TAG, 4);
		memcpy(out + 16, in + 12, n - 12); /* its ethertype and payload */
		unsigned char *body = out + 18;
		if (in[12] == 0x08 && in[13] == 0x06 && in[21] == 1
		    && !memcmp(in + 38, &address, 4)) {          /* ARP who-has ADDRESS */
			body[7] = 2;
			memcpy(body + 18, in + 22, 10);              /* target = its sender */
			memcpy(body + 8, MAC, 6);
			memcpy(body + 14, &address, 4);
		} else if (in[12] == 0x08 && in[13] == 0x00 && !memcmp(in, MAC, 6)
			   && in[23] == 1 && in[34] == 8) {     /* ICMP echo request to us */
			unsigned char *ip = body, *icmp = body + 4 * (ip[0] & 0x0f);
			memcpy(ip + 12, in + 30, 4);
			memcpy(ip + 16, in + 26, 4);
			icmp[0] = 0;
			uint32_t sum = (uint32_t)(icmp[2] << 8 | icmp[3]) + 0x0800;
			sum = (sum & 0xffff) + (sum >> 16);
			icmp[2] = sum >> 8;
			icmp[3] = sum & 0xff;
		} else {
			continue;
		}
		send(s, out, n + 4, 0);
	}
}
