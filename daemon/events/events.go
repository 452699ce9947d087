// Package events is berthd's events bus: the engine publishes container,
// image, exec and network events in Docker's shape (events.Message) and
// API clients subscribe to them (GET /events). The last Keep events are
// kept so that a subscriber asking for "since" a past time gets them.
//
// Publishing never blocks: a subscriber that does not keep up is dropped
// (its channel closed) rather than slowing the engine down.
package events

import (
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"
)

// Keep is how many past events the bus remembers, as dockerd (256).
const Keep = 256

// subscriberBuffer is how many events a subscriber may lag behind before
// it is dropped.
const subscriberBuffer = 1024

// Publisher is what engine packages need of the bus.
type Publisher interface {
	Publish(typ events.Type, action events.Action, actor events.Actor)
}

// Bus fans events out to subscribers. The zero value is not usable; call
// New.
type Bus struct {
	mu   sync.Mutex
	past []events.Message
	subs map[chan events.Message]struct{}
	now  func() time.Time
}

// New returns an empty bus.
func New() *Bus {
	return &Bus{subs: map[chan events.Message]struct{}{}, now: time.Now}
}

// Publish stamps an event with the current time and local scope and
// delivers it.
func (b *Bus) Publish(typ events.Type, action events.Action, actor events.Actor) {
	if actor.Attributes == nil {
		actor.Attributes = map[string]string{}
	}
	t := b.now()
	b.PublishMessage(events.Message{
		Type: typ, Action: action, Actor: actor, Scope: "local",
		Time: t.Unix(), TimeNano: t.UnixNano(),
	})
}

// PublishMessage delivers m as it is (its time must be set).
func (b *Bus) PublishMessage(m events.Message) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.past) == Keep {
		copy(b.past, b.past[1:])
		b.past = b.past[:Keep-1]
	}
	b.past = append(b.past, m)
	for ch := range b.subs {
		select {
		case ch <- m:
		default:
			// Too slow: drop it so that nobody else waits.
			delete(b.subs, ch)
			close(ch)
		}
	}
}

// Subscribe returns the remembered events, oldest first, and a channel of
// the events published from now on. The channel is closed by cancel, or by
// the bus when the subscriber falls too far behind.
func (b *Bus) Subscribe() (past []events.Message, live <-chan events.Message, cancel func()) {
	ch := make(chan events.Message, subscriberBuffer)
	b.mu.Lock()
	past = append([]events.Message(nil), b.past...)
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	var once sync.Once
	cancel = func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			if _, ok := b.subs[ch]; ok {
				delete(b.subs, ch)
				close(ch)
			}
		})
	}
	return past, ch, cancel
}

// Subscribers is the number of live subscriptions (for tests and info).
func (b *Bus) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}
