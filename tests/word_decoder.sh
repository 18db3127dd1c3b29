# word_decoder.sh: what the tests of composed word rows share (hyperlexeme/
# word_rows.h). Source it after HL (the CLI) and M (stories260K) are set:
#   train_word_decoder OUT.gguf   a decoder with an output adapter, trained for
#                                 10 steps on 20 scenes over 20 of the base's
#                                 one-token words (wl.jsonl, wt.jsonl)
# and newwords.jsonl declares N1 over two words it never trained on ("upon",
# "very") and one it did ("the").
train_word_decoder() { # OUT
  local W=(the and was her with said play his that mom she you they big friend little time had there for)
  local i a b
  : > wl.jsonl; : > wt.jsonl
  for i in $(seq 0 19); do
    a=${W[$i]}; b=${W[$(( (i + 7) % 20 ))]}
    echo "{\"lexeme\": \"W$i\", \"parts\": [\"$a\", \"$b\"]}" >> wl.jsonl
    echo "{\"scene\": \"W$i\", \"form\": \"symbols\", \"register\": \"logical\", \"output\": \"$a — $b\"}" >> wt.jsonl
  done
  echo '{"lexeme": "N1", "parts": ["upon", "very", "the"]}' > newwords.jsonl
  $HL train -m "$M" --lexicon wl.jsonl --compose decay --data wt.jsonl --steps 10 --rank 4 --ctx 32 \
    --targets q,v,output --val-fraction 0 --threads 2 -o "$1" --plain > /dev/null 2>&1
}
