package events

import (
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
)

func TestPastAndLive(t *testing.T) {
	b := New()
	for i := 0; i < Keep+10; i++ {
		b.Publish(events.ImageEventType, events.ActionTag, events.Actor{ID: "x"})
	}
	past, live, cancel := b.Subscribe()
	if len(past) != Keep {
		t.Fatalf("remembered %d events, want %d", len(past), Keep)
	}
	b.Publish(events.ContainerEventType, events.ActionStart, events.Actor{ID: "c1"})
	select {
	case m := <-live:
		if m.Actor.ID != "c1" || m.Scope != "local" || m.TimeNano == 0 || m.Time != m.TimeNano/int64(time.Second) {
			t.Fatalf("live event %+v", m)
		}
	case <-time.After(time.Second):
		t.Fatal("no live event")
	}
	cancel()
	cancel()
	if _, ok := <-live; ok {
		t.Fatal("channel open after cancel")
	}
	if b.Subscribers() != 0 {
		t.Fatal("subscriber kept after cancel")
	}
}

func TestSlowSubscriberDropped(t *testing.T) {
	b := New()
	_, live, cancel := b.Subscribe()
	defer cancel()
	done := make(chan struct{})
	go func() {
		for i := 0; i < subscriberBuffer+5; i++ {
			b.Publish(events.ImageEventType, events.ActionPull, events.Actor{ID: "x"})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("publishing blocked on a subscriber that does not read")
	}
	n := 0
	for range live {
		n++
	}
	if n != subscriberBuffer {
		t.Fatalf("slow subscriber got %d events before being dropped, want %d", n, subscriberBuffer)
	}
}
