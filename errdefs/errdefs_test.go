package errdefs

import (
	"errors"
	"fmt"
	"testing"
)

func TestCategories(t *testing.T) {
	cats := []struct {
		err error
		is  func(error) bool
	}{
		{ErrNotFound, IsNotFound},
		{ErrAlreadyExists, IsAlreadyExists},
		{ErrInvalidArgument, IsInvalidArgument},
		{ErrUnavailable, IsUnavailable},
		{ErrConflict, IsConflict},
		{ErrFailedPrecondition, IsFailedPrecondition},
		{ErrNotImplemented, IsNotImplemented},
		{ErrPermissionDenied, IsPermissionDenied},
		{ErrUnauthenticated, IsUnauthenticated},
	}
	for i, c := range cats {
		wrapped := fmt.Errorf("outer: %w", fmt.Errorf("blob x: %w", c.err))
		if !c.is(wrapped) {
			t.Errorf("%v: helper does not see the wrapped category", c.err)
		}
		for j, o := range cats {
			if i != j && o.is(wrapped) {
				t.Errorf("%v wrongly matches %v", c.err, o.err)
			}
		}
	}
	if IsNotFound(nil) || IsNotFound(errors.New("not found")) {
		t.Error("an unrelated error with the same text must not match")
	}
}
