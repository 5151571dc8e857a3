// Package zohoemu emulates the parts of Zoho CRM that crmshare talks to: the
// Share Records API (POST, GET, PUT and DELETE on
// /crm/{version}/{module}/{record_id}/actions/share) in the v2, v2.1 and v8
// dialects, the Users API, and the Zoho Accounts token endpoint, with Zoho's
// documented limits (concurrency, daily credits, share caps, token throttles)
// and deterministic fault injection. It is an http.Handler, so tests serve it
// with httptest.NewServer and cmd/zohoemu serves it on loopback.
//
// The package imports the standard library only. It decodes the wire JSON with
// its own structs, never the zoho package's, so a wrong JSON tag in the client
// makes a test fail instead of being copied into the emulator. It knows nothing
// of NATS, rules or the testing package.
//
// # Choices where Zoho's documents are silent or disagree
//
//   - POST and PUT success status: v8 replies 201 when every entry succeeded,
//     207 when some failed and 400 when all failed, always with the share array.
//     v2 and v2.1 reply 200 when at least one entry succeeded; when all failed
//     they reply with the documented status of the first failure (400, or 200
//     for v2's "Permission is invalid", as the v2 page documents).
//   - Mixed entries in one request: in every dialect the good entries are
//     applied and each bad entry gets its own error element, in request order.
//   - The v2/v2.1 user cap is a whole-request failure: a request that would
//     leave more than 10 direct users replies 403 SHARE_LIMIT_EXCEEDED as a bare
//     object and applies nothing. In v8 each entry past a cap fails with a
//     per-entry LIMIT_EXCEEDED and the others are applied.
//   - PUT: the recipients of the entries that succeeded become the direct share
//     list; recipients absent from the body lose their direct share; a recipient
//     whose entry failed keeps what it had. A PUT whose entries all fail changes
//     nothing. {"share":[]} is refused (INVALID_DATA, minimum_length 1): use
//     DELETE to remove every share.
//   - A recipient named twice in one POST gets "record is already visible to
//     the user." for the second entry; in one PUT the second entry fails with
//     INVALID_DATA "duplicate data".
//   - Disabled or unconfirmed users are refused with INVALID_DATA "cannot share
//     to the user"; unknown ones with "invalid user Id".
//   - An empty or malformed JSON body is 400 INVALID_DATA with message "body".
//   - Versions other than v2, v2.1 and v8 are 404 INVALID_URL_PATTERN.
//   - Daily credits are a fixed 24-hour window that starts with the first call.
package zohoemu
