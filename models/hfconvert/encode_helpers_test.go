package hfconvert

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

func appendInt32(b []byte, v int32) []byte { return binary.LittleEndian.AppendUint32(b, uint32(v)) }

func appendPiece(b []byte, score float32, p string) []byte {
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(score))
	b = appendInt32(b, int32(len(p)))
	return append(b, p...)
}

func byteName(b int) string { return fmt.Sprintf("<0x%02X>", b) }

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
