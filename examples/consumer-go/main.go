// Consuming walnats change events from Go, with a durable JetStream consumer.
//
//	go mod tidy
//	NATS_URL=nats://127.0.0.1:4222 go run . shop public.orders insert,update
//
// prints one line per change event of table public.orders in database shop and keeps its
// position in NATS under a durable consumer: stop it, write to the table, start it again,
// and it continues where it stopped. Events delivered again (an ack lost in a crash) are
// skipped by their Nats-Msg-Id. See docs/consumers.md for subjects and the envelope.
//
// Row values are kept as json.RawMessage, so int8 and numeric values stay exact (decode them
// with json.Decoder.UseNumber, or into the types you need).
//
// This example is not compiled or run by walnats's CI (which has no Go toolchain); the
// TypeScript example in examples/consumer-ts is, against a real daemon.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Event is the envelope of a row event (docs/consumers.md, "Envelope").
type Event struct {
	Op        string                     `json:"op"` // c u d t r
	Before    map[string]json.RawMessage `json:"before"`
	After     map[string]json.RawMessage `json:"after"`
	Source    Source                     `json:"source"`
	TsMs      int64                      `json:"ts_ms"`
	Unchanged []string                   `json:"unchanged,omitempty"`
}

type Source struct {
	Connector string  `json:"connector"`
	DB        string  `json:"db"`
	Schema    *string `json:"schema"`
	Table     *string `json:"table"`
	LSN       string  `json:"lsn"`
	CommitLSN string  `json:"commit_lsn"`
	Seq       int     `json:"seq"`
	TxID      *int64  `json:"txid"`
	TsMs      int64   `json:"ts_ms"`
	Snapshot  bool    `json:"snapshot"`
}

var keep = regexp.MustCompile(`^[A-Za-z0-9_-]$`)
var alnum = regexp.MustCompile(`^[A-Za-z0-9]$`)

// escapeToken is walnats's escaping of a name into one subject token:
// [A-Za-z0-9_-] kept, every other byte as %XX (upper-case hex), the empty name as "%".
func escapeToken(name string) string {
	if name == "" {
		return "%"
	}
	var b strings.Builder
	for _, c := range []byte(name) {
		if keep.MatchString(string(c)) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// defaultStreamName is walnats's default stream name: <prefix>_<db>, non-alphanumeric bytes
// as -XX (names longer than 200 characters are cut and hashed; set the stream explicitly then).
func defaultStreamName(prefix, db string) string {
	part := func(s string) string {
		var b strings.Builder
		for _, c := range []byte(s) {
			if alnum.MatchString(string(c)) {
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, "-%02X", c)
			}
		}
		return b.String()
	}
	return part(prefix) + "_" + part(db)
}

// seenIDs remembers the last n handled Nats-Msg-Ids. A sink that must survive restarts
// stores the last handled id (or stream sequence) with its data, in the same transaction.
type seenIDs struct {
	n     int
	set   map[string]struct{}
	order []string
}

func (s *seenIDs) has(id string) bool { _, ok := s.set[id]; return ok }
func (s *seenIDs) add(id string) {
	s.set[id] = struct{}{}
	s.order = append(s.order, id)
	if len(s.order) > s.n {
		delete(s.set, s.order[0])
		s.order = s.order[1:]
	}
}

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func main() {
	if len(os.Args) < 3 || !strings.Contains(os.Args[2], ".") {
		fmt.Fprintln(os.Stderr, "usage: go run . <database> <schema.table> [insert,update,delete,truncate,read]")
		os.Exit(2)
	}
	db := os.Args[1]
	schema, table, _ := strings.Cut(os.Args[2], ".")
	ops := []string{"insert", "update", "delete", "truncate", "read"}
	if len(os.Args) > 3 {
		ops = strings.Split(os.Args[3], ",")
	}
	prefix := getenv("WALNATS_PREFIX", "walnats")
	stream := getenv("STREAM", defaultStreamName(prefix, db))
	durable := getenv("DURABLE", regexp.MustCompile(`[^A-Za-z0-9_-]`).ReplaceAllString("example-"+db+"-"+os.Args[2], "_"))

	// One op: filter on it exactly. Several: `*` as the op token, and skip the others here
	// (nats-server 2.10+ could use FilterSubjects with one subject per op instead).
	opToken := "*"
	if len(ops) == 1 {
		opToken = ops[0]
	}
	filter := strings.Join([]string{prefix, escapeToken(db), escapeToken(schema), escapeToken(table), opToken}, ".")
	wanted := map[string]bool{}
	for _, op := range ops {
		wanted[op] = true
	}

	nc, err := nats.Connect(getenv("NATS_URL", nats.DefaultURL))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Drain()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:       durable,
		FilterSubject: filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 1000,
	})
	if err != nil {
		log.Fatal(err)
	}

	seen := &seenIDs{n: 100_000, set: map[string]struct{}{}}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		subject := msg.Subject()
		op := subject[strings.LastIndexByte(subject, '.')+1:]
		id := msg.Headers().Get("Nats-Msg-Id")
		if !wanted[op] || (id != "" && seen.has(id)) {
			_ = msg.Ack() // another op of this table, or a redelivery of a handled event
			return
		}
		var ev Event
		if err := json.Unmarshal(msg.Data(), &ev); err != nil {
			log.Printf("bad event on %s: %v", subject, err)
			_ = msg.Term() // will never parse: do not redeliver
			return
		}
		meta, _ := msg.Metadata()
		line, _ := json.Marshal(map[string]any{"seq": meta.Sequence.Stream, "id": id, "op": ev.Op, "before": ev.Before, "after": ev.After})
		fmt.Println(string(line))
		if id != "" {
			seen.add(id)
		}
		// DoubleAck waits for the server to confirm the ack.
		if err := msg.DoubleAck(ctx); err != nil {
			log.Printf("ack of %s failed (it will be delivered again and skipped): %v", id, err)
		}
	})
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Stop()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
}
