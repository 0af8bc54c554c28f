package project

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/strictjson"
)

// ErrNoProduct is wrapped by NoProductError.
var ErrNoProduct = errors.New("project: no such product")

// NoProductError is a product name the project does not know, with the
// names it does know and the nearest of them.
type NoProductError struct {
	Name     string
	Products []string
	Nearest  string
}

func (e *NoProductError) Error() string {
	msg := fmt.Sprintf("project: no product %q", e.Name)
	if len(e.Products) == 0 {
		return msg + "; the project has no products yet (add one with uptrust product add)"
	}
	msg += "; products are: " + strings.Join(e.Products, ", ")
	if e.Nearest != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", e.Nearest)
	}
	return msg
}

// Unwrap makes the error both ErrNoProduct and store.ErrNotFound.
func (e *NoProductError) Unwrap() []error { return []error{ErrNoProduct, store.ErrNotFound} }

// Product returns the named product, or a NoProductError listing the
// products there are, instead of the storage layers' not-found chain.
func (p *Project) Product(ctx context.Context, name string) (store.Product, error) {
	prod, err := p.Store.Product(ctx, name)
	if err == nil {
		return prod, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return prod, fmt.Errorf("project: product %q: %w", name, err)
	}
	all, lerr := p.Store.Products(ctx)
	if lerr != nil {
		return prod, fmt.Errorf("project: products: %w", lerr)
	}
	e := &NoProductError{Name: name}
	for _, pr := range all {
		e.Products = append(e.Products, pr.Name)
	}
	e.Nearest = strictjson.Nearest(name, e.Products)
	return prod, e
}

// CheckProduct is Product for callers that need only to know it exists;
// the empty name (all products) passes.
func (p *Project) CheckProduct(ctx context.Context, name string) error {
	if name == "" {
		return nil
	}
	_, err := p.Product(ctx, name)
	return err
}
