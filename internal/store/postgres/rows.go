package postgres

import "github.com/uptrust/uptrust/internal/store/sqlrow"

// The row decoding and the time encoding are the same in every SQL store
// (internal/store/sqlrow); these names keep the queries short.
type scanner = sqlrow.Scanner

const timeLayout = sqlrow.TimeLayout

var (
	decodeTime = sqlrow.DecodeTime
	encodeDay  = sqlrow.EncodeDay
)
