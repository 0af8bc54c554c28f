// Package devauth authenticates a managed device's requests to an uptrust
// server with the device's own Ed25519 key, using HTTP Message Signatures
// (RFC 9421) and a Content-Digest (RFC 9530). The agent calls Sign on each
// request; the server's device API runs Verifier.Verify before it acts.
//
// # Why message signatures and not mutual TLS
//
// Fleets of any size put a TLS-terminating load balancer, reverse proxy or
// CDN in front of the server (DESIGN.md: replicas behind a load balancer,
// a CDN in front of /repo/). Mutual TLS authenticates the hop that
// terminates TLS, not the server: behind a terminator the server sees the
// client certificate only if the terminator forwards it in a header (for
// example X-Forwarded-Client-Cert), and the server must then trust that
// header, so anyone who reaches the server past the terminator, or any
// misconfigured hop that passes the header through, can claim to be any
// device. It also needs a certificate authority in the server, issuing and
// renewing device certificates, with its own key to guard, and TLS
// terminator configuration per deployment. A message signature travels in
// ordinary headers end to end through any number of proxies and is checked
// by the server itself with the public key it stored at enrolment.
//
// On the device both are cheap in Go without cgo: the agent already links
// crypto/ed25519, crypto/sha256 and encoding/base64 (for TUF), so this
// package adds only its own code. Mutual TLS would need certificate
// requests, renewal before expiry and a clock good enough for certificate
// validity; a signature needs only the clock within the skew window, and
// the server's answer carries its Date so a device without a real-time
// clock can see how far off it is.
//
// # The profile
//
// One signature, labelled "uptrust" (Label), on every device request:
//
//	Content-Digest: sha-256=:<base64 of SHA-256 of the body, empty or not>:
//	Signature-Input: uptrust=("@method" "@authority" "@path" "@query" "content-digest");created=<unix s>;keyid="<KeyID>";nonce="<random>";alg="ed25519";tag="uptrust-device"
//	Signature: uptrust=:<base64 Ed25519 signature of the RFC 9421 signature base>:
//
// Covered components, and why:
//
//   - "@method", "@path" and "@query": what the request does and to what.
//     "@target-uri" is not used: it includes the scheme, which a
//     TLS-terminating proxy changes from https to http.
//   - "@authority": the server the device meant, so a request signed for one
//     server (staging) is worthless at another. A proxy that rewrites Host
//     would break it, so a server behind such a proxy sets
//     Verifier.Authority to the authority devices are configured with and
//     the request's Host is then ignored. X-Forwarded-Host and the other
//     X-Forwarded-* headers are never read: anyone can send them.
//   - "content-digest": the body, through its SHA-256 (RFC 9530), present on
//     every request including bodiless ones (the digest of nothing), so a
//     body cannot be added to a signed GET.
//   - created: the signing time; the server refuses a request outside
//     ±Skew of its clock (default 5 minutes).
//   - keyid: which device key signed, KeyID(pub) by convention (the
//     unpadded base64url SHA-256 of the raw public key), so the server looks
//     the key up by an index and stores only public keys: a leaked database
//     lets no one sign as a device.
//   - nonce: 128 random bits (NewNonce); the server refuses a nonce it saw
//     for that key while the request could still be inside the window.
//   - alg and tag: fix the algorithm and this protocol, so that the key and
//     signature cannot be taken for another use.
//
// The verifier takes the component list from the request in any order and
// accepts extra header fields (covered, so present), but refuses a signature
// without the five components above, with unknown parameters, or with
// component parameters (;sf, ;bs, ;req, ;key).
//
// # Order of checks
//
// Verify parses the fields, checks the profile and the time window (no key
// look-up for a stale request), looks up the key, checks the signature over
// the signature base, then reads the body (refused without reading when its
// declared length exceeds MaxBody, and cut at MaxBody+1 bytes otherwise)
// and compares its digest, and only then records the nonce: a tampered copy
// that arrives first cannot burn the nonce of the genuine request. The body
// is handed on to the handler from memory, so a handler never acts on bytes
// that were not verified.
//
// # Replay protection across replicas
//
// Verifier.Nonces remembers (keyid, nonce) until created+Skew, after which
// the request is refused as too old anyway. MemoryNonces does this for one
// process, bounded. Several replicas behind a load balancer need the nonce
// check to be shared, otherwise a request replayed to another replica within
// the window passes. Two shapes were weighed:
//
//   - a shared nonce table (keyid, nonce, expires) with a unique key and a
//     purge of expired rows: stateless devices, concurrent requests allowed,
//     one insert per request;
//   - a per-device monotonic counter stored with the device: one row per
//     device, but every request becomes an update of that row, the device
//     must persist its counter before each request (flash wear, and a
//     restored backup locks the device out), and two concurrent requests
//     from one device race.
//
// The recommendation is the nonce table, split by method (ByMethod): the
// update check (GET) is on the hot path and must not touch the database (an
// unchanged device's check is a 304 served from memory), and replaying a GET
// changes nothing and returns only what the genuine request already
// returned, so safe methods use the per-process MemoryNonces; state-changing
// requests (POST, PUT, PATCH, DELETE: reports, inventory) write to the
// database anyway, so one more insert into the shared table costs little
// there. NonceStore is the interface for that table; internal/devnonce
// implements it on the device_nonces table of internal/store (schema 8),
// and internal/managed uses it for its POSTs.
//
// # What the server must add around it
//
//   - The KeyStore answers from memory (keys loaded with the store's
//     generation poll, unknown keyids cached as unknown for a while): Verify
//     asks it for any well-formed keyid inside the window before any
//     signature is checked, and the update check must not reach the
//     database.
//   - The device's state (accepted, rejected, decommissioned) is checked
//     after Verify, with Result.KeyID.
//   - A proxy that re-encodes the path or the query breaks signatures; one
//     that strips a path prefix is handled by PathPrefix.
//   - MemoryNonces bounds the total, not each device: a device whose key
//     leaked can fill it (refusals are then 503, never accepted replays)
//     until its key is revoked.
//
// On the device, Transport signs every request of an http.Client.
//
// Verifier is safe for concurrent use once configured; Sign has no state.
package devauth
