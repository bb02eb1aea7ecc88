/**
 * Templates and subjects of the knowledge evaluation (knowledge.eval.ts).
 *
 * TRAINING_TEMPLATES: the fixture corpus's templates that end where the
 * object starts (README.txt of the fixture). HELD_OUT_TEMPLATES: paraphrases
 * written for this evaluation, none of them in corpus.txt (checked by
 * knowledge.eval.ts). UNKNOWN_SUBJECTS: made-up countries and things that are
 * not countries, none of them in facts.jsonl or corpus.txt (checked too).
 */
export const TRAINING_TEMPLATES: Record<string, string[]> = {
  capital: [
    'The capital of {} is',
    "{}'s capital city is",
    'The capital city of {} is',
    '{} has its capital in',
  ],
  currency: [
    'The currency of {} is the',
    'In {}, people pay with the',
    'The official currency of {} is the',
  ],
  language: ['People in {} speak', 'The main language of {} is', 'In {}, most people speak'],
  continent: ['{} is a country in', '{} is located in', '{} lies in', 'The country {} is part of'],
}

export const HELD_OUT_TEMPLATES: Record<string, string[]> = {
  capital: [
    'The seat of government of {} is',
    'In {}, the capital is',
    'Everyone knows that the capital of {} is',
    'The capital of the country {} is',
    '{} is governed from',
  ],
  currency: [
    'In {}, you pay with the',
    'The money used in {} is the',
    'The currency used in {} is the',
    'Prices in {} are given in the',
  ],
  language: [
    'The language spoken in {} is',
    'Most people in {} speak',
    'In {}, people speak',
    'The official language of {} is',
  ],
  continent: [
    '{} is a nation in',
    '{} is situated in',
    'The country of {} lies in',
    '{} can be found in',
  ],
}

export const UNKNOWN_SUBJECTS: string[] = [
  // made-up countries
  'Zubrovia',
  'Kelmaria',
  'Mordavia',
  'Eldoria',
  'Valdoria',
  'Trabonia',
  'Quelmar',
  'Ostravia',
  'Pelunia',
  'Norvasta',
  'Zentara',
  'Brakistan',
  'Luminor',
  'Gorvath',
  'Ardenia',
  'Vostrana',
  'Merovia',
  'Kalvistan',
  'Dravonia',
  'Tessaly Isles',
  // not countries at all
  'banana',
  'Tuesday',
  'bicycle',
  'Einstein',
  'chocolate',
  'purple',
  'elephant',
  'piano',
  'the moon',
  'seven',
]
